// HTTP/2 through tern-proxy behind the capture, as in a pod: nghttp (prior knowledge) calling
// nghttpd backends by cluster IP under the seed's VirtualService and DestinationRule; gRPC end to
// end (unary, both streaming directions, trailers, an error status) between real grpcio client
// and server; and what a hostile client sends (bad pseudo-headers, a CONTINUATION flood, rapid
// reset), each refused while the proxy keeps serving.

#include "proxy/testing/proxy_h2_fixture.h"

namespace tern::proxy {

// Outside the anonymous namespace: a member of the shared fixture.
void h2test::ProxyH2::ExpectHttp2ReachesHttp1Backends() {
  LOAD_SNAPSHOT(SeedSnapshot(false), "seed");  // no sidecars: UPGRADE does not apply
  testing_support::Backend v1(net_->peer, {"10.200.0.2", 8080}, "v1"), v2(net_->peer, {"10.200.0.3", 8080}, "v2");
  ASSERT_TRUE(v1.ok() && v2.ok());
  auto canary = RunIn(net_->pod, 1000, {"nghttp", "-H", "x-canary: true", "http://10.96.0.20:8080/headers"});
  EXPECT_EQ(canary.exit_code, 0) << canary.err << Log();
  EXPECT_EQ(canary.out.rfind("v2 GET /headers HTTP/1.1", 0), 0u) << canary.out;
  EXPECT_NE(canary.out.find("host: 10.96.0.20:8080"), std::string::npos) << canary.out;
  EXPECT_NE(canary.out.find("x-canary: true"), std::string::npos) << canary.out;
  // Bodies both ways, streamed across the protocols; several requests share upstream connections.
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/upload", std::string(300000, 'u')).ok());
  auto up = RunIn(net_->pod, 1000, {"nghttp", "-H", "x-canary: true", "-d", dir_ + "/upload", "http://10.96.0.20:8080/up"});
  EXPECT_NE(up.out.find("received 300000"), std::string::npos) << up.out.substr(0, 200) << up.err;
  auto big = RunIn(net_->pod, 1000, {"nghttp", "-m", "3", "-H", "x-canary: true", "http://10.96.0.20:8080/big"});
  EXPECT_EQ(big.out.size(), 3 * (std::string("v2 GET /big HTTP/1.1").size() + 300000)) << big.err;
  EXPECT_EQ(v2.seen().size(), 5u) << "one request each";
}

namespace {

using namespace h2test;  // NOLINT: the fixture's helpers, shared by both HTTP/2 test files

TEST_F(ProxyH2, PriorKnowledgeHttp2FollowsTheSeedsRoutesAndStreamsBodies) {
  LoadSeed();
  H2Backend v1(net_->peer, dir_, "10.200.0.2", "v1"), v2(net_->peer, dir_, "10.200.0.3", "v2");
  std::this_thread::sleep_for(300ms);  // nghttpd binds
  auto canary = RunIn(net_->pod, 1000, {"nghttp", "-H", "x-canary: true", "http://10.96.0.20:8080/who"});
  EXPECT_EQ(canary.out, "v2") << canary.err << Log();
  // Ten streams on one connection (multiplexed): 90/10 lands mostly on v1; all answered.
  auto many = RunIn(net_->pod, 1000, {"nghttp", "-m", "10", "http://10.96.0.20:8080/who"});
  EXPECT_EQ(many.exit_code, 0) << many.err;
  EXPECT_EQ(many.out.size(), 20u) << many.out;
  // 300 KB up and back, through both flow-control windows.
  std::string upload(300000, 'u');
  for (size_t i = 0; i < upload.size(); i += 1000) upload[i] = static_cast<char>('a' + (i / 1000) % 26);
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/upload", upload).ok());
  auto echo = RunIn(net_->pod, 1000, {"nghttp", "-d", dir_ + "/upload", "http://10.96.0.20:8080/who"});
  EXPECT_EQ(echo.out.size(), upload.size()) << echo.err;
  EXPECT_TRUE(echo.out == upload) << "the body came back whole and in order";
  ASSERT_TRUE(WaitFor([&] { return Log().find("\"protocol\":\"HTTP/2\"") != std::string::npos; })) << Log();
  EXPECT_NE(Log().find("\"cluster\":\"outbound|8080|v2|product-service.my-app.svc.cluster.local\""), std::string::npos);
}

TEST_F(ProxyH2, Http2ClientsReachHttp1OnlyBackendsOnPortsDeclaredHttp) { ExpectHttp2ReachesHttp1Backends(); }

// Where io_uring is refused (a seccomp profile, an old kernel; TERN_IO_URING=off here) writes
// go out with plain sendmsg: the same exchanges, bodies both ways, work the same.
class ProxyH2WithoutIoUring : public ProxyH2 {
  std::map<std::string, std::string> ExtraEnv() const override { return {{"TERN_IO_URING", "off"}}; }
};
TEST_F(ProxyH2WithoutIoUring, Http2ClientsReachHttp1OnlyBackendsWithPlainSends) {
  EXPECT_NE(Log().find("writes: one sendmsg each"), std::string::npos) << Log();
  ExpectHttp2ReachesHttp1Backends();
}


// The seed without sidecars (its ports speak HTTP/1.1 upstream) and its two HTTP/1.1 backends.
class ProxyH2ToHttp1 : public ProxyH2 {
 protected:
  void StartSeedAndBackends() {
    LOAD_SNAPSHOT(SeedSnapshot(false), "seed");
    v1_.emplace(net_->peer, Endpoint{"10.200.0.2", 8080}, "v1");
    v2_.emplace(net_->peer, Endpoint{"10.200.0.3", 8080}, "v2");
    ASSERT_TRUE(v1_->ok() && v2_->ok());
  }
  std::optional<testing_support::Backend> v1_, v2_;
};

// A connection's finished exchanges are rebuilt for its next streams, keeping their buffers'
// room (Bridge::Retire): nothing of a stream may reach a later one, whatever way it ended.
TEST_F(ProxyH2ToHttp1, StreamsAfterStreamsOnOneConnectionCarryNothingOver) {
  ASSERT_NO_FATAL_FAILURE(StartSeedAndBackends());
  int fd = ConnectApp();
  ASSERT_GE(fd, 0);
  RawH2Client c(fd);
  int answered = 0;
  for (int i = 0; i < 60; ++i) {  // past the 16 exchanges a connection keeps spare, several times
    SCOPED_TRACE("stream " + std::to_string(i));
    auto h = Get("/headers");
    h.emplace_back("x-canary", "true");
    h.emplace_back("x-stream", std::to_string(i) + std::string(40, 's'));  // a field long enough to own heap room
    switch (i % 4) {
      case 0:
      case 1: {  // answered: it carries its own field, and only its own
        int32_t id = c.Request(h);
        ASSERT_TRUE(c.Pump([&] { return c.Closed(id); })) << Log();
        EXPECT_EQ(c.status[id], "200");
        EXPECT_EQ(c.body[id].rfind("v2 GET /headers HTTP/1.1", 0), 0u) << c.body[id];
        EXPECT_NE(c.body[id].find("x-stream: " + std::to_string(i) + "sss"), std::string::npos) << c.body[id];
        EXPECT_EQ(c.body[id].find("x-stream"), c.body[id].rfind("x-stream")) << "one x-stream field: " << c.body[id];
        EXPECT_EQ(c.body[id].find("x-big"), std::string::npos) << c.body[id];
        ++answered;
        break;
      }
      case 2: {  // over the header bounds: answered 431 by the proxy itself
        for (int j = 0; j < 120; ++j) h.emplace_back("x-big-" + std::to_string(j), std::string(600, 'b'));
        int32_t id = c.Request(h);
        ASSERT_TRUE(c.Pump([&] { return c.Closed(id); })) << Log();
        EXPECT_EQ(c.status[id], "431");
        break;
      }
      case 3: {  // reset by the client as soon as it is sent
        int32_t id = c.Request(h);
        ASSERT_TRUE(c.Flush());
        c.Reset(id);
        c.Pump([&] { return c.Closed(id); }, 1000ms);
        break;
      }
    }
  }
  EXPECT_EQ(answered, 30);
  EXPECT_EQ(c.goaway, -1) << "the connection served every stream";
}

// One keep-alive HTTP/1.1 connection and one HTTP/2 connection to the seed's service, opened
// once and kept: what answered each one's next GET `path` (the backend's first two bytes, or
// the status when it is not 200).
class LongLivedClients {
 public:
  LongLivedClients(int h1, int h2, std::string path) : h1_(h1), h2_(h2), path_(std::move(path)) {}
  ~LongLivedClients() {
    if (h1_ >= 0) close(h1_);
  }
  bool ok() const { return h1_ >= 0; }
  std::string ViaHttp1() {
    std::string answer =
        testing_support::Exchange(h1_, "GET " + path_ + " HTTP/1.1\r\nHost: product-service:8080\r\n\r\n");
    size_t body = answer.find("\r\n\r\n");
    return body == std::string::npos ? answer : answer.substr(body + 4, 2);
  }
  std::string ViaHttp2() {
    int32_t id = h2_.Request(Get(path_));
    if (!h2_.Pump([&] { return h2_.Closed(id); })) return "no answer";
    return h2_.status[id] == "200" ? h2_.body[id].substr(0, 2) : h2_.status[id];
  }

 private:
  int h1_;
  RawH2Client h2_;
  std::string path_;
};

// A long-lived connection routes each request by the newest snapshot, not the one it was
// opened under: one keep-alive HTTP/1.1 connection and one HTTP/2 connection, the route moved
// from v1 to v2, then an endpoint removed; the next request on each follows at once.
TEST_F(ProxyH2ToHttp1, LongLivedConnectionsFollowANewSnapshotAtTheirNextRequest) {
  using testing_support::ProductResources;
  using testing_support::ProductSnapshot;
  LOAD_SNAPSHOT(ProductSnapshot("to-v1", "ALLOW_ANY", ProductResources("", "")), "to-v1");
  v1_.emplace(net_->peer, Endpoint{"10.200.0.2", 8080}, "v1");
  v2_.emplace(net_->peer, Endpoint{"10.200.0.3", 8080}, "v2");
  ASSERT_TRUE(v1_->ok() && v2_->ok());
  const int h1 = ConnectApp(), h2 = ConnectApp();
  ASSERT_GE(h2, 0);
  LongLivedClients clients(h1, h2, "/a");
  ASSERT_TRUE(clients.ok());
  auto via_h1 = [&] { return clients.ViaHttp1(); };
  auto via_h2 = [&] { return clients.ViaHttp2(); };
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(via_h1(), "v1");
    EXPECT_EQ(via_h2(), "v1");
  }
  LOAD_SNAPSHOT(ProductSnapshot("to-v2", "ALLOW_ANY", ProductResources("", "", "{host: product-service, subset: v2}")), "to-v2");
  EXPECT_EQ(via_h1(), "v2") << Log();
  EXPECT_EQ(via_h2(), "v2") << Log();
  // Every endpoint of the service, then v2's endpoint removed: the next requests never reach it.
  LOAD_SNAPSHOT(ProductSnapshot("both", "ALLOW_ANY", ProductResources("", "", "{host: product-service}")), "both");
  std::set<std::string> seen;
  for (int i = 0; i < 8; ++i) seen.insert(via_h1()), seen.insert(via_h2());
  EXPECT_EQ(seen, (std::set<std::string>{"v1", "v2"})) << "round robin over both";
  std::string without_v2 = ProductSnapshot("one-left", "ALLOW_ANY", ProductResources("", "", "{host: product-service}"));
  without_v2.erase(without_v2.find("- {service: product-service.my-app.svc.cluster.local, address: 10.200.0.3"),
                   without_v2.find("\n", without_v2.find("address: 10.200.0.3")) + 1 -
                       without_v2.find("- {service: product-service.my-app.svc.cluster.local, address: 10.200.0.3"));
  LOAD_SNAPSHOT(without_v2, "one-left");
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(via_h1(), "v1") << Log();
    EXPECT_EQ(via_h2(), "v1") << Log();
  }
  // Idle past 1 s, the HTTP/1.1 connection is parked (no session, only its socket: see
  // http1_parking.h); the route moves to v2 while it is: its next request follows.
  std::this_thread::sleep_for(1500ms);
  LOAD_SNAPSHOT(ProductSnapshot("parked-to-v2", "ALLOW_ANY", ProductResources("", "", "{host: product-service, subset: v2}")),
                "parked-to-v2");
  EXPECT_EQ(via_h1(), "v2") << Log();
  EXPECT_EQ(via_h2(), "v2") << Log();
}

// The same toward HTTP/2 upstreams (endpoints with sidecars under h2UpgradePolicy UPGRADE): an
// HTTP/1.1 keep-alive connection and an HTTP/2 one, each bridged to HTTP/2, follow the new route
// at their next request.
TEST_F(ProxyH2, LongLivedConnectionsFollowANewSnapshotTowardHttp2Upstreams) {
  using testing_support::ProductResources;
  using testing_support::ProductSnapshot;
  const std::string upgrade = "{connectionPool: {http: {h2UpgradePolicy: UPGRADE}}}";
  LOAD_SNAPSHOT(ProductSnapshot("up-v1", "ALLOW_ANY", ProductResources("", upgrade), true), "up-v1");
  H2Backend v1(net_->peer, dir_, "10.200.0.2", "v1"), v2(net_->peer, dir_, "10.200.0.3", "v2");
  std::this_thread::sleep_for(300ms);  // nghttpd binds
  const int h1 = ConnectApp(), h2 = ConnectApp();
  ASSERT_GE(h2, 0);
  LongLivedClients clients(h1, h2, "/who");
  ASSERT_TRUE(clients.ok());
  auto via_h1 = [&] { return clients.ViaHttp1(); };
  auto via_h2 = [&] { return clients.ViaHttp2(); };
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(via_h1(), "v1") << Log();
    EXPECT_EQ(via_h2(), "v1") << Log();
  }
  LOAD_SNAPSHOT(ProductSnapshot("up-v2", "ALLOW_ANY", ProductResources("", upgrade, "{host: product-service, subset: v2}"), true),
                "up-v2");
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(via_h1(), "v2") << Log();
    EXPECT_EQ(via_h2(), "v2") << Log();
  }
  EXPECT_NE(Log().find("\"cluster\":\"outbound|8080|v2|product-service.my-app.svc.cluster.local\""), std::string::npos);
}

// A renewed exchange is built when its last stream ends: the next stream's access-log duration
// must count from its own start, not include the time the connection sat idle.
TEST_F(ProxyH2ToHttp1, AStreamOnAnIdledConnectionLogsItsOwnDuration) {
  ASSERT_NO_FATAL_FAILURE(StartSeedAndBackends());
  int fd = ConnectApp();
  ASSERT_GE(fd, 0);
  RawH2Client c(fd);
  for (const char* path : {"/before-idle", "/after-idle"}) {
    auto h = Get(path);
    h.emplace_back("x-canary", "true");
    int32_t id = c.Request(h);
    ASSERT_TRUE(c.Pump([&] { return c.Closed(id); })) << Log();
    EXPECT_EQ(c.status[id], "200");
    if (std::string_view(path) == "/before-idle") std::this_thread::sleep_for(1500ms);
  }
  std::string line;
  ASSERT_TRUE(WaitFor([&] {
    std::string log = Log();
    size_t at = log.find("\"path\":\"/after-idle\"");
    if (at == std::string::npos) return false;
    size_t begin = log.rfind('\n', at), end = log.find('\n', at);
    line = log.substr(begin == std::string::npos ? 0 : begin + 1, end == std::string::npos ? std::string::npos : end - begin - 1);
    return true;
  })) << Log();
  size_t at = line.find("\"duration_ms\":");
  ASSERT_NE(at, std::string::npos) << line;
  EXPECT_LT(std::stol(line.substr(at + 14)), 1000) << line;
}

TEST_F(ProxyH2, InboundHttp2ReachesAnHttp1AppInItsDeclaredProtocol) {
  // The pod's own service: web, port 80 declared http, the app on 9080.
  const std::string snapshot = testing_support::OneServiceSnapshot("own", "ALLOW_ANY", "web", "10.96.0.30", "http-web", 80,
                                                                   "10.200.0.1", 9080);
  LOAD_SNAPSHOT(snapshot, "own");
  testing_support::Backend app(net_->pod, {"0.0.0.0", 9080}, "app");
  ASSERT_TRUE(app.ok());
  // From the peer (outside the pod): HTTP/2 with a steering header that must not reach the app.
  auto res = RunIn(net_->peer, 0, {"nghttp", "-H", "x-envoy-retry-on: 5xx", "http://10.200.0.1:9080/headers"});
  EXPECT_EQ(res.exit_code, 0) << res.err << Log();
  EXPECT_EQ(res.out.rfind("app GET /headers HTTP/1.1", 0), 0u) << res.out;
  EXPECT_EQ(res.out.find("x-envoy"), std::string::npos) << res.out;
  ASSERT_TRUE(WaitFor([&] { return Log().find("\"cluster\":\"inbound|9080||\"") != std::string::npos; })) << Log();
}

TEST_F(ProxyH2, Http1ClientsAreUpgradedToHttp2TowardSidecars) {
  LoadSeed();  // h2UpgradePolicy: UPGRADE, endpoints with sidecars; nghttpd speaks only HTTP/2
  H2Backend v1(net_->peer, dir_, "10.200.0.2", "v1"), v2(net_->peer, dir_, "10.200.0.3", "v2");
  std::this_thread::sleep_for(300ms);
  int direct = nettest::ConnectSocket(net_->peer, {"10.200.0.2", 8080}, 0);
  ASSERT_GE(direct, 0);
  EXPECT_EQ(testing_support::Exchange(direct, "GET /who HTTP/1.1\r\nHost: x\r\n\r\n").find("HTTP/1.1 200"), std::string::npos)
      << "the backend answers no plain HTTP/1.1: what reaches it through the proxy is HTTP/2";
  close(direct);
  int app = ConnectApp();
  ASSERT_GE(app, 0);
  for (int i = 0; i < 5; ++i) {  // one keep-alive connection, one upstream HTTP/2 connection
    std::string res = testing_support::Exchange(app, "GET /who HTTP/1.1\r\nHost: product-service:8080\r\nx-canary: true\r\n\r\n");
    ASSERT_EQ(res.substr(0, 12), "HTTP/1.1 200") << res << Log();
    EXPECT_EQ(res.substr(res.size() - 2), "v2") << res;
  }
  std::string upload(200000, 'u');
  std::string res = testing_support::Exchange(
      app, "POST /who HTTP/1.1\r\nHost: product-service:8080\r\nx-canary: true\r\nContent-Length: 200000\r\n\r\n" + upload);
  ASSERT_EQ(res.substr(0, 12), "HTTP/1.1 200") << res.substr(0, 300);
  EXPECT_EQ(res.substr(res.find("\r\n\r\n") + 4), upload) << "nghttpd echoed the body whole";
  close(app);
  ASSERT_TRUE(WaitFor([&] { return Log().find("\"protocol\":\"HTTP/1.1\"") != std::string::npos; })) << Log();
}

TEST_F(ProxyH2, GrpcWorksEndToEndUnaryStreamingTrailersErrorsAndRetries) {
  const std::string snapshot =
      testing_support::OneServiceSnapshot("grpc", "ALLOW_ANY", "echo", "10.96.0.21", "grpc", 9090, "10.200.0.2");
  LOAD_SNAPSHOT(snapshot, "grpc");
  const std::string script = std::string(TERN_SOURCE_DIR) + "/proxy/testing/grpc_echo.py";
  pid_t server = tern::testing_support::Spawn({"/usr/bin/env", "ip", "netns", "exec", net_->peer.name(), "/usr/bin/python3", script,
                                         "serve", "10.200.0.2:9090", "echo-1"},
                                        kEnv, dir_ + "/grpc-server.log");
  ASSERT_TRUE(WaitFor([&] { return ReadFile(dir_ + "/grpc-server.log").ok() && ReadFile(dir_ + "/grpc-server.log")->find("serving") != std::string::npos; }))
      << *ReadFile(dir_ + "/grpc-server.log");
  auto call = RunIn(net_->pod, 1000, {"/usr/bin/python3", script, "call", "10.96.0.21:9090"});
  tern::testing_support::Stop(server);
  EXPECT_EQ(call.exit_code, 0) << call.err << Log();
  EXPECT_NE(call.out.find("unary echo-1:hello echo-1\n"), std::string::npos) << call.out << call.err;
  EXPECT_NE(call.out.find("server_stream 50 echo-1:49 50\n"), std::string::npos) << call.out;
  EXPECT_NE(call.out.find("client_stream echo-1:300000\n"), std::string::npos) << call.out;
  EXPECT_NE(call.out.find("bidi echo-1:a,echo-1:b,echo-1:c\n"), std::string::npos) << call.out;
  EXPECT_NE(call.out.find("fail FAILED_PRECONDITION refused by echo-1\n"), std::string::npos) << call.out;
  // Istio's default retry policy retries grpc-status UNAVAILABLE: the server fails every other call.
  EXPECT_NE(call.out.find("flaky 4 of 4\n"), std::string::npos) << call.out;
  EXPECT_TRUE(WaitFor([&] { return Log().find("\"cluster\":\"outbound|9090||echo.my-app.svc.cluster.local\"") != std::string::npos; })) << Log();
}

TEST_F(ProxyH2, MalformedPseudoHeadersAreRefusedNeverForwarded) {
  LoadSeed();
  H2Backend v1(net_->peer, dir_, "10.200.0.2", "v1"), v2(net_->peer, dir_, "10.200.0.3", "v2");
  std::this_thread::sleep_for(300ms);
  int fd = ConnectApp();
  ASSERT_GE(fd, 0);
  RawH2Client c(fd);
  const std::vector<std::vector<std::pair<std::string, std::string>>> bad = {
      {{":method", "GET /who HTTP/1.1\r\nx: y"}, {":scheme", "http"}, {":authority", "product-service"}, {":path", "/who"}},
      {{":method", "GET"}, {":scheme", "http"}, {":authority", "product-service"}, {":path", "/who HTTP/1.1"}},
      {{":method", "GET"}, {":scheme", "http"}, {":authority", "product-service"}},                       // no :path
      {{":method", "GET"}, {":method", "POST"}, {":scheme", "http"}, {":path", "/who"}},                   // two :method
      {{":method", "GET"}, {":scheme", "http"}, {":path", "/who"}, {":authority", "a b"}},
      {{":method", "G T"}, {":scheme", "http"}, {":path", "/who"}, {":authority", "product-service"}},
      {{":method", "GET"}, {":scheme", "http"}, {":path", "who"}, {":authority", "product-service"}},
      {{":method", "GET"}, {":scheme", "http"}, {":path", "/a\x7f"}, {":authority", "product-service"}},
  };
  std::vector<int32_t> ids;
  for (const auto& h : bad) ids.push_back(c.Request(h));
  auto canary = Get("/who");
  canary.emplace_back("x-canary", "true");  // always v2: the answer is known
  int32_t good = c.Request(canary);
  ASSERT_TRUE(c.Pump([&] { return c.Closed(good); })) << Log();
  for (size_t i = 0; i < ids.size(); ++i) {
    SCOPED_TRACE("case " + std::to_string(i));
    ASSERT_TRUE(c.reset.count(ids[i])) << "status " << c.status[ids[i]];
    EXPECT_EQ(c.reset[ids[i]], NGHTTP2_PROTOCOL_ERROR);
    EXPECT_EQ(c.status[ids[i]], "") << "no answer: the stream was refused before routing";
  }
  EXPECT_EQ(c.status[good], "200") << "the same connection still serves a good request";
  EXPECT_EQ(c.body[good], "v2");
  // Header lists over the bounds: 64 KiB decoded, or 100 fields.
  auto big = Get("/who");
  for (int i = 0; i < 120; ++i) big.emplace_back("x-big-" + std::to_string(i), std::string(600, 'b'));
  auto many = Get("/who");
  for (int i = 0; i < 101; ++i) many.emplace_back("x-n-" + std::to_string(i), "1");
  int32_t big_id = c.Request(big), many_id = c.Request(many);
  ASSERT_TRUE(c.Pump([&] { return c.Closed(big_id) && c.Closed(many_id); })) << Log();
  EXPECT_EQ(c.status[big_id], "431") << "reset " << (c.reset.count(big_id) ? static_cast<int>(c.reset[big_id]) : -1) << " goaway " << c.goaway;
  EXPECT_EQ(c.status[many_id], "431");
}

TEST_F(ProxyH2, AContinuationFloodEndsTheConnection) {
  LoadSeed();
  int fd = ConnectApp();
  ASSERT_GE(fd, 0);
  RawH2Client c(fd);
  ASSERT_TRUE(c.Flush());
  // HEADERS without END_HEADERS, then CONTINUATION frames that never end the block.
  std::string first = Literal(":method", "GET") + Literal(":path", "/") + Literal(":scheme", "http");
  ASSERT_TRUE(c.SendRaw(Frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_STREAM, 1, first)));
  int sent = 0;
  for (; sent < 2000; ++sent) {
    if (!c.SendRaw(Frame(NGHTTP2_CONTINUATION, 0, 1, Literal("x-flood-" + std::to_string(sent), std::string(1000, 'f'))))) break;
    if (sent % 50 == 49 && c.Pump([&] { return c.eof; }, 10ms)) break;
  }
  EXPECT_TRUE(c.Pump([&] { return c.eof; }, 3000ms)) << "the proxy ends the connection";
  EXPECT_LT(sent, 2000) << "it did so before the flood was over";
  EXPECT_EQ(c.goaway, NGHTTP2_ENHANCE_YOUR_CALM);
  EXPECT_NE(Log().find("header block too long"), std::string::npos) << Log();
  ExpectOthersAreServed();
}

// HPACK amplification: one 4 KiB entry put in the dynamic table, then named 12,000 times in one
// 16 KiB HEADERS frame (48 MB decoded). The connection ends with ENHANCE_YOUR_CALM as soon as
// the decoded list is far over its bound, instead of decoding (and checking) all of it and
// answering 431; others are served.
TEST_F(ProxyH2, AHeaderBlockThatDecodesFarPastItsBoundEndsTheConnection) {
  LoadSeed();
  RawH2Client c(ConnectApp());
  ASSERT_TRUE(c.Flush());
  std::string block = "\x82\x86\x84";  // :method GET, :scheme http, :path / (static table)
  // Literal with incremental indexing, new name: x-big: 4000 x 'a' (length 4000 = 127 + 3873).
  block += std::string("\x40\x05x-big\x7f\xa1\x1e", 10) + std::string(4000, 'a');
  block += std::string(12000, '\xbe');  // indexed: the first dynamic entry (62), each 4 KiB decoded
  ASSERT_LT(block.size(), 16384u);
  ASSERT_TRUE(c.SendRaw(Frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_STREAM | NGHTTP2_FLAG_END_HEADERS, 1, block)));
  EXPECT_TRUE(c.Pump([&] { return c.goaway >= 0; }, 3000ms)) << Log();
  EXPECT_EQ(c.goaway, NGHTTP2_ENHANCE_YOUR_CALM);
  EXPECT_EQ(c.status.count(1), 0u) << "no 431 after decoding it all";
  EXPECT_NE(Log().find("header list far over its bound"), std::string::npos) << Log();
  ExpectOthersAreServed();
}

// A header list just over the bound is still answered 431 (an honest client with big cookies
// learns why), the connection kept.
TEST_F(ProxyH2, AHeaderListJustOverItsBoundGets431) {
  LoadSeed();
  RawH2Client c(ConnectApp());
  auto request = Get("/who");
  for (int i = 0; i < 20; ++i) request.emplace_back("x-cookie-" + std::to_string(i), std::string(4000, 'c'));  // 80 KB
  int32_t id = c.Request(request);
  ASSERT_TRUE(c.Pump([&] { return c.Closed(id); })) << Log();
  EXPECT_EQ(c.status[id], "431");
  EXPECT_LT(c.goaway, 0);
}

// More streams than SETTINGS_MAX_CONCURRENT_STREAMS, after the SETTINGS ACK: the extra stream is
// refused (REFUSED_STREAM, RFC 9113 5.1.2) and the 100 others on the connection live on. The
// client is written frame by frame (an nghttp2 client would hold the extra stream back itself).
TEST_F(ProxyH2, AStreamPastMaxConcurrentStreamsIsRefusedAndOthersLive) {
  LoadSeed();
  Listener v1(net_->peer, {"10.200.0.2", 8080}), v2(net_->peer, {"10.200.0.3", 8080});  // accept, never answer
  ASSERT_TRUE(v1.ok() && v2.ok());
  auto client = FrameByFrame();
  ASSERT_TRUE(client);
  FrameByFrameClient& c = *client;
  for (uint32_t id = 1; id <= 201; id += 2) ASSERT_TRUE(c.Send(FrameByFrameClient::GetWho(id)));
  c.ReadFor(3000ms, [&] { return c.resets.count(201) > 0 || c.goaway >= 0; });
  EXPECT_EQ(c.goaway, -1) << "the connection lives";
  ASSERT_EQ(c.resets.count(201), 1u) << Log();
  EXPECT_EQ(c.resets[201], static_cast<uint32_t>(NGHTTP2_REFUSED_STREAM));
  EXPECT_EQ(c.resets.size(), 1u) << "the 100 streams within the limit are not touched";
  // One of the 100 is reset by the client: a new stream then fits.
  ASSERT_TRUE(c.Send(Frame(NGHTTP2_RST_STREAM, 0, 1, std::string("\0\0\0\x08", 4))));  // CANCEL
  ASSERT_TRUE(c.Send(FrameByFrameClient::GetWho(203)));
  c.ReadFor(500ms, [&] { return c.resets.count(203) > 0 || c.goaway >= 0; });
  EXPECT_EQ(c.resets.count(203), 0u) << "a stream within the limit is taken";
  EXPECT_EQ(c.goaway, -1);
}

// A SETTINGS_INITIAL_WINDOW_SIZE that would take an open stream's send window past 2^31-1 ends
// the connection with FLOW_CONTROL_ERROR (RFC 9113 6.9.2), not a reset of that stream.
TEST_F(ProxyH2, AnInitialWindowThatOverflowsAStreamsWindowEndsTheConnection) {
  LoadSeed();
  {
    Listener v1(net_->peer, {"10.200.0.2", 8080}), v2(net_->peer, {"10.200.0.3", 8080});  // accept, never answer
    ASSERT_TRUE(v1.ok() && v2.ok());
    auto client = FrameByFrame();
    ASSERT_TRUE(client);
    FrameByFrameClient& c = *client;
    ASSERT_TRUE(c.Send(FrameByFrameClient::GetWho(1)));
    // Stream 1's window to the maximum, then an initial window one larger than the default.
    ASSERT_TRUE(c.Send(Frame(NGHTTP2_WINDOW_UPDATE, 0, 1, U32(NGHTTP2_MAX_WINDOW_SIZE - NGHTTP2_INITIAL_WINDOW_SIZE))));
    c.ReadFor(200ms, [&] { return c.goaway >= 0; });
    EXPECT_EQ(c.goaway, -1) << "a window at the maximum is allowed";
    ASSERT_TRUE(c.Send(Frame(NGHTTP2_SETTINGS, 0, 0, std::string("\0\x04", 2) + U32(NGHTTP2_INITIAL_WINDOW_SIZE + 1))));
    c.ReadFor(3000ms, [&] { return c.goaway >= 0; });
    EXPECT_EQ(c.goaway, NGHTTP2_FLOW_CONTROL_ERROR) << Log();
  }
  ExpectOthersAreServed();
}

}  // namespace
}  // namespace tern::proxy
