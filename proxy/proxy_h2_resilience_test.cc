// HTTP/2 through tern-proxy behind the capture, what goes wrong upstream: retries toward HTTP/1.1
// and HTTP/2 upstreams, route and per-try timeouts, resets, mirrors, shared upstream connections
// and their limits, fault injection for gRPC, and WebSockets over HTTP/2 with their idle timeout.

#include "proxy/testing/proxy_h2_fixture.h"

namespace tern::proxy {
namespace {

using namespace h2test;  // NOLINT: the fixture's helpers, shared by both HTTP/2 test files

// An HTTP/2 client, an HTTP/1.1 endpoint that refuses, Istio's default retries: each retry
// finds no connection to give back (the pairing that crashed the proxy). The client gets 503
// after three attempts and the proxy serves on.
TEST_F(ProxyH2, Http2ClientsOfARefusingHttp1EndpointGet503AfterTheDefaultRetries) {
  LOAD_SNAPSHOT(ProductSnapshot("refusing", "ALLOW_ANY", testing_support::ProductResources("", "")), "refusing");
  for (int i = 0; i < 3; ++i) {
    auto run = RunIn(net_->pod, 1000, {"nghttp", "-v", "http://10.96.0.20:8080/refused"});
    EXPECT_NE(run.out.find(":status: 503"), std::string::npos) << run.out.substr(0, 1500) << Log();
  }
  ASSERT_TRUE(WaitFor([&] { return Count(Log(), "\"path\":\"/refused\"") == 3; })) << Log();
  EXPECT_EQ(Count(Log(), "\"response_flags\":\"UF,URX\""), 3) << Log();
  testing_support::Backend v1(net_->peer, {"10.200.0.2", 8080}, "v1");
  auto ok = RunIn(net_->pod, 1000, {"nghttp", "http://10.96.0.20:8080/ok"});
  EXPECT_NE(ok.out.find("v1 GET /ok"), std::string::npos) << ok.out << Log();
}

TEST_F(ProxyH2, RapidResetIsAnsweredWithGoaway) {
  LoadSeed();
  // Upstreams that accept and never answer: every reset is premature, however the client's
  // thread is scheduled (a stream already answered would not count as a rapid reset).
  Listener v1(net_->peer, {"10.200.0.2", 8080}), v2(net_->peer, {"10.200.0.3", 8080});
  ASSERT_TRUE(v1.ok() && v2.ok());
  RawH2Client c(ConnectApp());
  int streams = 0;
  for (; streams < 1000 && c.goaway < 0 && !c.eof; ++streams) {
    int32_t id = c.Request(Get("/who"));
    if (!c.Flush()) break;
    c.Reset(id);
    c.Pump([] { return false; }, 1ms);
  }
  EXPECT_TRUE(c.Pump([&] { return c.goaway >= 0; }, 3000ms)) << Log();
  EXPECT_EQ(c.goaway, NGHTTP2_ENHANCE_YOUR_CALM);
  EXPECT_LT(streams, 300) << "the connection ended early";
  EXPECT_NE(Log().find("rapid reset"), std::string::npos);
}

TEST_F(ProxyH2, AnUpstreamThatResetsGives503AndOthersAreServed) {
  LoadSeed();
  H2Backend v1(net_->peer, dir_, "10.200.0.2", "v1");
  // Accepts, then closes: an upstream that resets. Gone afterwards (connections to it are refused).
  auto v2 = std::make_unique<Listener>(net_->peer, Endpoint{"10.200.0.3", 8080});
  ASSERT_TRUE(v2->ok());
  std::this_thread::sleep_for(300ms);
  RawH2Client c(ConnectApp());
  auto canary = Get("/who");
  canary.emplace_back("x-canary", "true");
  int32_t to_v2 = c.Request(canary);
  std::thread closer([&] {
    Endpoint at, from;
    int fd = v2->AcceptConnection(&at, &from);
    if (fd >= 0) close(fd);
  });
  ASSERT_TRUE(c.Pump([&] { return c.Closed(to_v2); })) << Log();
  closer.join();
  v2.reset();
  EXPECT_EQ(c.status[to_v2], "503");
  int32_t to_v1 = c.Request(Get("/who"));  // 90/10: most likely v1; either way an answer
  ASSERT_TRUE(c.Pump([&] { return c.Closed(to_v1); })) << Log();
  EXPECT_FALSE(c.status[to_v1].empty());
  EXPECT_TRUE(WaitFor([&] { return Log().find("\"response_flags\":\"UC\"") != std::string::npos; })) << Log();
}

TEST_F(ProxyH2, StreamsResetWithAnswersBufferedDoNotStallTheConnection) {
  LoadSeed();
  H2Backend v1(net_->peer, dir_, "10.200.0.2", "v1"), v2(net_->peer, dir_, "10.200.0.3", "v2");
  std::this_thread::sleep_for(300ms);
  RawH2Client c(ConnectApp());
  auto big = Get("/big");
  big.emplace_back("x-canary", "true");  // every stream on the same upstream connection
  // Each stream: the client does not read, the proxy buffers what the upstream sends (up to
  // its stream window), then the client resets. Eight of them hold more than the upstream
  // connection's 1 MiB window unless the dropped bytes are acknowledged.
  for (int i = 0; i < 8; ++i) {
    int32_t id = c.Request(big);
    ASSERT_TRUE(c.Flush());
    std::this_thread::sleep_for(200ms);
    c.Reset(id);
    c.Pump([&] { return c.Closed(id); }, 1000ms);
  }
  auto who = Get("/who");
  who.emplace_back("x-canary", "true");
  int32_t id = c.Request(who);
  ASSERT_TRUE(c.Pump([&] { return c.Closed(id); }, 5000ms)) << "the shared upstream connection stalled";
  EXPECT_EQ(c.status[id], "200");
  EXPECT_EQ(c.body[id], "v2");
}

TEST_F(ProxyH2, Http2RequestsAreMirroredWithTheirBodies) {
  LOAD_SNAPSHOT(testing_support::MirrorSnapshot(), "mirror");
  testing_support::Backend v1(net_->peer, {"10.200.0.2", 8080}, "v1"), v2(net_->peer, {"10.200.0.3", 8080}, "v2");
  auto run = RunIn(net_->pod, 1000, {"nghttp", "-m", "100", "http://10.96.0.20:8080/orders"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(v1.seen().size(), 100u) << "every request reached the primary";
  WaitFor([&] { return v2.seen().size() >= 30; });
  auto shadow = v2.seen();
  EXPECT_GE(shadow.size(), 30u);  // 50 expected, sd 5
  EXPECT_LE(shadow.size(), 70u);
  ASSERT_FALSE(shadow.empty());
  EXPECT_NE(shadow[0].find("GET /orders HTTP/1.1"), std::string::npos) << shadow[0];
  EXPECT_NE(shadow[0].find("host: 10.96.0.20-shadow:8080"), std::string::npos) << shadow[0];
  // Requests with a body are mirrored with it (20 POSTs: half expected on the shadow).
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/order", "hello").ok());
  auto posts = RunIn(net_->pod, 1000, {"nghttp", "-m", "20", "-d", dir_ + "/order", "http://10.96.0.20:8080/orders"});
  EXPECT_EQ(posts.exit_code, 0) << posts.err;
  auto shadow_post = [&] {
    for (const auto& h : v2.seen()) {
      if (h.rfind("POST /orders", 0) == 0) return h;
    }
    return std::string();
  };
  ASSERT_TRUE(WaitFor([&] { return !shadow_post().empty(); })) << "no POST reached the shadow";
  EXPECT_NE(shadow_post().find("content-length: 5"), std::string::npos) << shadow_post();
}

TEST_F(ProxyH2, AnHttp2UpstreamThatNeverAnswersGets504AtTheRouteTimeout) {
  LOAD_SNAPSHOT(testing_support::TimeoutSnapshot(true), "timeout");
  Listener silent(net_->peer, {"10.200.0.2", 8080});  // takes the connection, never speaks HTTP/2
  ASSERT_TRUE(silent.ok());
  RawH2Client c(ConnectApp());
  auto start = std::chrono::steady_clock::now();
  int32_t id = c.Request(Get("/"));
  ASSERT_TRUE(c.Pump([&] { return c.Closed(id); }, 5000ms)) << Log();
  auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(c.status[id], "504");
  EXPECT_GE(waited, 900ms);
  EXPECT_LT(waited, 3000ms);
  // An HTTP/1.1 client upgraded toward the same silent sidecar: the same answer.
  int app = ConnectApp();
  std::string res = testing_support::Exchange(app, "GET / HTTP/1.1\r\nHost: product-service\r\n\r\n");
  EXPECT_EQ(res.substr(0, 12), "HTTP/1.1 504") << res;
  close(app);
  EXPECT_TRUE(WaitFor([&] { return Log().find("\"response_flags\":\"UT\"") != std::string::npos; })) << Log();
}

// The route's timeout counts from the end of the request, as Envoy counts it: a request whose
// body takes longer than the timeout to arrive is still answered, and an upstream that never
// answers gets 504 one timeout after the body ended; toward HTTP/2 and HTTP/1.1 upstreams alike.
// (Counted from the first try, the slow body got 504 before it was whole.)
TEST_F(ProxyH2, TheRouteTimeoutCountsFromTheEndOfTheRequest) {
  for (bool sidecars : {true, false}) {
    SCOPED_TRACE(sidecars ? "toward an HTTP/2 upstream" : "toward an HTTP/1.1 upstream");
    const std::string snapshot = ProductSnapshot(sidecars ? "timeout-h2" : "timeout-h1", "ALLOW_ANY",
                                                 testing_support::ProductResources("      timeout: 1s\n", "{connectionPool: {http: {h2UpgradePolicy: UPGRADE}}}"),
                                                 sidecars);
    if (sidecars) {
      LOAD_SNAPSHOT(snapshot, "timeout-h2");
    } else {
      LOAD_SNAPSHOT(snapshot, "timeout-h1");
    }
    for (bool answers : {true, false}) {
      SCOPED_TRACE(answers ? "an upstream that answers" : "an upstream that never answers");
      std::optional<H2Backend> h2;
      std::optional<testing_support::Backend> h1;
      std::optional<Listener> silent;
      if (!answers) silent.emplace(net_->peer, Endpoint{"10.200.0.2", 8080});
      else if (sidecars) h2.emplace(net_->peer, dir_, "10.200.0.2", "v1");
      else h1.emplace(net_->peer, Endpoint{"10.200.0.2", 8080}, "v1");
      ASSERT_TRUE(!silent || silent->ok());
      ASSERT_TRUE(WaitFor([&] { return nettest::ConnectSocket(net_->peer, {"10.200.0.2", 8080}, 0) >= 0; }));
      RawH2Client c(ConnectApp());
      const auto fields = std::vector<std::pair<std::string, std::string>>{
          {":method", "POST"}, {":scheme", "http"}, {":authority", "product-service:8080"}, {":path", "/upload"}};
      int32_t id = c.Request(fields, "first ", true);
      c.Pump([] { return false; }, 700ms);
      c.SendBody(id, "second ");
      c.Pump([] { return false; }, 700ms);  // 1.4 s of body: past the route's timeout
      EXPECT_FALSE(c.Closed(id)) << "answered before the request was whole: " << c.status[id];
      c.EndBody(id);
      const auto ended = std::chrono::steady_clock::now();
      ASSERT_TRUE(c.Pump([&] { return c.Closed(id); }, 5000ms)) << Log();
      if (answers) {
        EXPECT_EQ(c.status[id], "200") << c.body[id];
      } else {
        EXPECT_EQ(c.status[id], "504");
        EXPECT_GE(std::chrono::steady_clock::now() - ended, 900ms);
      }
    }
  }
}

// The seed's retries for HTTP/2 clients of HTTP/1.1 upstreams: 60 requests, 3 streams at a
// time (the retry budget always allows three retries in flight; a burst of a hundred would get
// only 20 %), against backends failing 30 % with 503 all succeed; a PUT's body is sent again
// whole on its retry.
TEST_F(ProxyH2, Http2ClientsGetTheSeedsRetriesTowardHttp1Upstreams) {
  LOAD_SNAPSHOT(SeedSnapshot(), "seed");
  auto flaky = [](int n, const std::string&) {
    return testing_support::Reply{.status = (n % 10 == 0 || n % 10 == 3 || n % 10 == 6) ? 503 : 200};
  };
  testing_support::Backend v1(net_->peer, {"10.200.0.2", 8080}, "v1", flaky), v2(net_->peer, {"10.200.0.3", 8080}, "v2", flaky);
  int ok = 0, failed = 0;
  std::string out;
  for (int i = 0; i < 20; ++i) {
    auto run = RunIn(net_->pod, 1000, {"nghttp", "-v", "-m", "3", "http://10.96.0.20:8080/items"});
    EXPECT_EQ(run.exit_code, 0) << run.err;
    for (size_t at = run.out.find(":status: "); at != std::string::npos; at = run.out.find(":status: ", at + 1)) {
      (run.out.compare(at + 9, 3, "200") == 0 ? ok : failed)++;
    }
    out += run.out;
  }
  EXPECT_EQ(ok, 60) << out.substr(0, 2000);
  EXPECT_EQ(failed, 0) << [&] {  // the failed ones' access-log lines
    std::string lines, log = Log();
    for (size_t at = log.find("\"response_code\":503"); at != std::string::npos; at = log.find("\"response_code\":503", at + 1)) {
      lines += log.substr(at, 60) + "\n";
    }
    return lines;
  }();
  EXPECT_GT(v1.requests() + v2.requests(), 70) << "the failures were retried";
  EXPECT_LE(v1.requests() + v2.requests(), 240);

  // A PUT (idempotent) with a body: the first try gets 503, the retry carries the body again.
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/upload", std::string(20000, 'p')).ok());
  int before = v1.requests() + v2.requests();
  auto put = RunIn(net_->pod, 1000, {"nghttp", "-H", ":method: PUT", "-H", "x-canary: true", "-d", dir_ + "/upload",
                                     "http://10.96.0.20:8080/put"});
  EXPECT_EQ(put.exit_code, 0) << put.err;
  EXPECT_NE(put.out.find("received 20000"), std::string::npos) << put.out.substr(0, 300);
  EXPECT_GE(v1.requests() + v2.requests() - before, 1);
}

// Retries toward HTTP/2 upstreams: with round robin over an endpoint where nothing listens and
// one that serves, Istio's default policy sends each refused stream again to the other (two
// streams at a time: within the retry budget's three), for HTTP/2 and HTTP/1.1 clients alike; a
// status the route retries on is tried again, then relayed with URX.
TEST_F(ProxyH2, StreamsToHttp2UpstreamsAreRetried) {
  LOAD_SNAPSHOT(ProductSnapshot("h2-retries", "ALLOW_ANY",
                                testing_support::ProductResources(
                                    "", "{loadBalancer: {simple: ROUND_ROBIN}, connectionPool: {http: {h2UpgradePolicy: UPGRADE}}}",
                                    "{host: product-service}"),
                                /*sidecars=*/true),
                "h2-retries");
  H2Backend live(net_->peer, dir_, "10.200.0.3", "live");  // 10.200.0.2 refuses
  std::this_thread::sleep_for(300ms);
  int ok = 0;
  for (int i = 0; i < 10; ++i) {
    auto run = RunIn(net_->pod, 1000, {"nghttp", "-m", "2", "http://10.96.0.20:8080/who"});
    EXPECT_EQ(run.exit_code, 0) << run.err;
    for (size_t at = run.out.find("live"); at != std::string::npos; at = run.out.find("live", at + 1)) ++ok;
  }
  EXPECT_EQ(ok, 20) << Log().substr(0, 3000);
  // HTTP/1.1 clients upgraded to HTTP/2 toward the sidecars get the same retries.
  int app = ConnectApp();
  ASSERT_GE(app, 0);
  for (int i = 0; i < 10; ++i) {
    std::string res = testing_support::Exchange(app, "GET /who HTTP/1.1\r\nHost: product-service:8080\r\n\r\n");
    EXPECT_NE(res.find("HTTP/1.1 200"), std::string::npos) << res;
    EXPECT_NE(res.find("live"), std::string::npos) << res;
  }
  close(app);
  ASSERT_TRUE(WaitFor([&] { return Count(Log(), "\"msg\":\"access\"") >= 30; }));
  EXPECT_EQ(Count(Log(), "\"response_code\":503"), 0);

  LOAD_SNAPSHOT(ProductSnapshot("h2-status", "ALLOW_ANY",
                                testing_support::ProductResources(
                                    "      retries: {attempts: 2, retryOn: \"404\"}\n",
                                    "{connectionPool: {http: {h2UpgradePolicy: UPGRADE}}}", "{host: product-service, subset: v2}"),
                                /*sidecars=*/true),
                "h2-status");
  auto missing = RunIn(net_->pod, 1000, {"nghttp", "-v", "http://10.96.0.20:8080/missing"});
  EXPECT_NE(missing.out.find(":status: 404"), std::string::npos) << missing.out.substr(0, 1000);
  ASSERT_TRUE(WaitFor([&] { return Log().find("\"path\":\"/missing\"") != std::string::npos; }));
  EXPECT_NE(Log().find("\"path\":\"/missing\",\"protocol\":\"HTTP/2\",\"response_code\":404,\"response_flags\":\"URX\""),
            std::string::npos)
      << Log();
}

// One worker: its HTTP/2 upstream connections are the ones counted.
// A WebSocket client's frame carrying `text`: masked, as a client's must be (RFC 6455 5.3).
std::string ClientTextFrame(const std::string& text) {
  std::string f = {static_cast<char>(0x81), static_cast<char>(0x80 | text.size())};
  const char mask[4] = {0x11, 0x22, 0x33, 0x44};
  f.append(mask, 4);
  for (size_t i = 0; i < text.size(); ++i) f += static_cast<char>(text[i] ^ mask[i % 4]);
  return f;
}

// WebSockets over HTTP/2 (RFC 8441): the proxy announces SETTINGS_ENABLE_CONNECT_PROTOCOL, an
// extended CONNECT (:protocol websocket) is routed as the GET it becomes, asked of the HTTP/1.1
// upstream as an Upgrade (with a key of the proxy's own), and its 101 reaches the client as 200;
// then the stream's DATA and the connection's bytes flow both ways, each end passed on. A refused
// upgrade is answered with the upstream's status; a plain CONNECT is still not proxied.
TEST_F(ProxyH2, WebSocketsOverHttp2BecomeHttp1UpgradesAndFlowBothWays) {
  LOAD_SNAPSHOT(OneServiceSnapshot("ws", "ALLOW_ANY", "chat", "10.96.0.30", "http", 8765, "10.200.0.2"), "ws");
  const std::string script = std::string(TERN_SOURCE_DIR) + "/proxy/testing/ws_app.py";
  pid_t service = Spawn({"/usr/bin/env", "ip", "netns", "exec", net_->peer.name(), "/usr/bin/python3", script, "serve",
                         "10.200.0.2", "8765", "chat"},
                        {{"PATH", "/usr/bin:/bin"}}, dir_ + "/ws-service.log");
  ASSERT_TRUE(WaitFor([&] { return nettest::Connect(net_->peer, {"10.200.0.2", 8765}, 0); }));
  auto websocket = [](const std::string& path) {
    return RawH2Client::Fields{{":method", "CONNECT"}, {":protocol", "websocket"}, {":scheme", "http"},
                               {":path", path},        {":authority", "chat:8765"},  {"sec-websocket-version", "13"}};
  };
  struct Row {
    const char* path;
    std::string status;
    std::vector<std::string> heard;  // in the answer's DATA, in order
  } rows[] = {
      {"/echo", "200", {"chat:ping"}},
      {"/greet", "200", {"hello from chat", "chat:ping"}},
      {"/refuse", "403", {"refused"}},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.path);
    int fd = nettest::ConnectSocket(net_->pod, {"10.96.0.30", 8765}, 1000);
    ASSERT_GE(fd, 0);
    RawH2Client client(fd);
    // The stream stays open after its first message, as a WebSocket's does.
    const int32_t id = client.Request(websocket(row.path), ClientTextFrame("ping"), /*hold=*/true);
    ASSERT_GT(id, 0);
    ASSERT_TRUE(client.Pump([&] {
      const std::string& got = client.body[id];
      return client.Closed(id) || got.find(row.heard.back()) != std::string::npos;
    })) << client.fields[id] << Log();
    EXPECT_EQ(client.status[id], row.status) << client.fields[id];
    EXPECT_EQ(client.fields[id].find("sec-websocket-accept"), std::string::npos) << "the proxy's own key's accept stays";
    size_t at = 0;
    for (const std::string& heard : row.heard) {
      at = client.body[id].find(heard, at);
      EXPECT_NE(at, std::string::npos) << heard << " in " << client.body[id];
    }
    // The client's END_STREAM is a half-close toward the app, which then closes: the stream ends.
    client.EndBody(id);
    EXPECT_TRUE(client.Pump([&] { return client.Closed(id); })) << Log();
    EXPECT_EQ(client.reset.count(id), 0u) << "ended, not reset";
  }
  // A CONNECT for anything but a WebSocket is not proxied.
  int fd = nettest::ConnectSocket(net_->pod, {"10.96.0.30", 8765}, 1000);
  ASSERT_GE(fd, 0);
  RawH2Client plain(fd);
  const int32_t id = plain.Request({{":method", "CONNECT"}, {":authority", "10.200.0.2:8765"}});
  ASSERT_TRUE(plain.Pump([&] { return plain.Closed(id); }));
  EXPECT_EQ(plain.status[id], "501");
  std::string log = Log();
  EXPECT_EQ(Count(log, "\"path\":\"/echo\",\"protocol\":\"HTTP/2\",\"response_code\":200"), 1) << log;
  EXPECT_EQ(Count(log, "\"path\":\"/refuse\",\"protocol\":\"HTTP/2\",\"response_code\":403"), 1) << log;
  Stop(service);
}

// A tunnel that moves no byte for its destination's idle timeout (connectionPool.http.idleTimeout,
// here 1 s) is ended, flag SI: an HTTP/2 client's stream is reset (CANCEL), an HTTP/1.1 client's
// connection closed; one that keeps talking lives on past it.
TEST_F(ProxyH2, AnIdleWebSocketTunnelEndsAtItsIdleTimeout) {
  LOAD_SNAPSHOT(OneServiceSnapshot("ws", "ALLOW_ANY", "chat", "10.96.0.30", "http", 8765, "10.200.0.2") +
                    "resources:\n- apiVersion: networking.istio.io/v1\n  kind: DestinationRule\n"
                    "  metadata: {name: chat, namespace: my-app}\n"
                    "  spec: {host: chat, trafficPolicy: {connectionPool: {http: {idleTimeout: 1s}}}}\n",
                "ws");
  const std::string script = std::string(TERN_SOURCE_DIR) + "/proxy/testing/ws_app.py";
  pid_t service = Spawn({"/usr/bin/env", "ip", "netns", "exec", net_->peer.name(), "/usr/bin/python3", script, "serve",
                         "10.200.0.2", "8765", "chat"},
                        {{"PATH", "/usr/bin:/bin"}}, dir_ + "/ws-service.log");
  ASSERT_TRUE(WaitFor([&] { return nettest::Connect(net_->peer, {"10.200.0.2", 8765}, 0); }));
  // HTTP/2: a message, then silence.
  int fd = nettest::ConnectSocket(net_->pod, {"10.96.0.30", 8765}, 1000);
  ASSERT_GE(fd, 0);
  RawH2Client client(fd);
  const int32_t id = client.Request({{":method", "CONNECT"}, {":protocol", "websocket"}, {":scheme", "http"},
                                     {":path", "/echo"}, {":authority", "chat:8765"}, {"sec-websocket-version", "13"}},
                                    ClientTextFrame("ping"), /*hold=*/true);
  ASSERT_TRUE(client.Pump([&] { return client.body[id].find("chat:ping") != std::string::npos; })) << Log();
  const auto quiet = std::chrono::steady_clock::now();
  ASSERT_TRUE(client.Pump([&] { return client.Closed(id); }, 5000ms)) << Log();
  const auto idled = std::chrono::steady_clock::now() - quiet;
  EXPECT_EQ(client.reset[id], static_cast<uint32_t>(NGHTTP2_CANCEL));
  EXPECT_GE(idled, 900ms);
  EXPECT_LT(idled, 3000ms);
  // HTTP/1.1: the upgrade by hand, two messages 600 ms apart (the tunnel lives on), then silence.
  int h1 = nettest::ConnectSocket(net_->pod, {"10.96.0.30", 8765}, 1000);
  ASSERT_GE(h1, 0);
  ASSERT_TRUE(nettest::SendAll(h1, "GET /echo HTTP/1.1\r\nHost: chat:8765\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                                   "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"));
  std::string got = ReceiveUntil(h1, 3000ms, nullptr, [](const std::string& g) { return g.find("\r\n\r\n") != std::string::npos; });
  ASSERT_EQ(got.rfind("HTTP/1.1 101", 0), 0u) << got;
  for (int i = 0; i < 2; ++i) {
    std::this_thread::sleep_for(600ms);
    ASSERT_TRUE(nettest::SendAll(h1, ClientTextFrame("ping")));
    got = ReceiveUntil(h1, 3000ms, nullptr, [](const std::string& g) { return g.find("chat:ping") != std::string::npos; });
    EXPECT_NE(got.find("chat:ping"), std::string::npos) << "message " << i << " after 600 ms: the tunnel lives";
  }
  const auto h1_quiet = std::chrono::steady_clock::now();
  bool ended = false;
  ReceiveUntil(h1, 5000ms, &ended);
  const auto h1_idled = std::chrono::steady_clock::now() - h1_quiet;
  EXPECT_TRUE(ended) << "closed by the proxy";
  EXPECT_GE(h1_idled, 900ms);
  EXPECT_LT(h1_idled, 3000ms);
  close(h1);
  EXPECT_TRUE(WaitFor([&] { return Count(Log(), "\"response_flags\":\"SI\"") == 2; })) << Log();
  Stop(service);
}

class OneWorkerH2 : public ProxyH2 {
  std::vector<std::string> ExtraArgs() const override { return {"--concurrency", "1"}; }

 protected:
  // Connections the backends on the peer hold open from the proxy (port 8080).
  int UpstreamConnections() {
    auto ss = RunIn(net_->peer, 0, {"ss", "-Htn", "state", "established", "( sport = :8080 )"});
    return Count(ss.out, "\n");
  }
};

// The worker's HTTP/2 upstream connections are shared by every client: five clients at once
// (three HTTP/1.1 upgraded, two HTTP/2) multiplex onto one connection to the endpoint, which
// stays within tcp.maxConnections 1; a request that would need a second connection (round
// robin onto the other endpoint) is refused at once with 503 UO, while the first endpoint's
// connection serves on.
TEST_F(OneWorkerH2, Http2UpstreamConnectionsAreSharedAndCountInMaxConnections) {
  const std::string pool = "connectionPool: {tcp: {maxConnections: 1}, http: {h2UpgradePolicy: UPGRADE}}";
  LOAD_SNAPSHOT(ProductSnapshot("h2-shared", "ALLOW_ANY",
                                testing_support::ProductResources("", "{" + pool + "}", "{host: product-service, subset: v2}"),
                                /*sidecars=*/true),
                "h2-shared");
  H2Backend v1(net_->peer, dir_, "10.200.0.2", "v1"), v2(net_->peer, dir_, "10.200.0.3", "v2");
  std::this_thread::sleep_for(300ms);
  std::vector<int> http1;
  for (int i = 0; i < 3; ++i) {
    http1.push_back(ConnectApp());
    ASSERT_GE(http1.back(), 0);
    std::string res = testing_support::Exchange(http1.back(), "GET /who HTTP/1.1\r\nHost: product-service:8080\r\n\r\n");
    EXPECT_EQ(res.substr(0, 12), "HTTP/1.1 200") << res << Log();
    EXPECT_EQ(res.substr(res.size() - 2), "v2") << res;
  }
  RawH2Client a(ConnectApp()), b(ConnectApp());
  int32_t from_a = a.Request(Get("/who")), from_b = b.Request(Get("/who"));
  ASSERT_TRUE(a.Pump([&] { return a.Closed(from_a); })) << Log();
  ASSERT_TRUE(b.Pump([&] { return b.Closed(from_b); })) << Log();
  EXPECT_EQ(a.status[from_a], "200");
  EXPECT_EQ(b.body[from_b], "v2");
  // Every client still connected: one upstream connection carried all five.
  EXPECT_EQ(UpstreamConnections(), 1);
  for (int fd : http1) close(fd);

  LOAD_SNAPSHOT(ProductSnapshot("h2-limit", "ALLOW_ANY",
                                testing_support::ProductResources(
                                    "", "{loadBalancer: {simple: ROUND_ROBIN}, " + pool + "}", "{host: product-service}"),
                                /*sidecars=*/true),
                "h2-limit");
  RawH2Client c(ConnectApp());
  std::map<std::string, int> answers;  // status + body
  for (int i = 0; i < 6; ++i) {
    int32_t id = c.Request(Get("/who"));
    ASSERT_TRUE(c.Pump([&] { return c.Closed(id); })) << Log();
    ++answers[c.status[id] + " " + (c.status[id] == "200" ? c.body[id] : "")];
  }
  // Round robin alternates: the endpoint reached first has the connection, the other none.
  EXPECT_EQ(answers["503 "], 3) << Log();
  EXPECT_EQ(answers["200 v1"] + answers["200 v2"], 3);
  EXPECT_TRUE(answers["200 v1"] == 0 || answers["200 v2"] == 0);
  ASSERT_TRUE(WaitFor([&] { return Count(Log(), "\"response_flags\":\"UO\"") == 3; })) << Log();
  // The first snapshot's cluster (subset v2) keeps its connection until idle: two in all.
  EXPECT_EQ(UpstreamConnections(), 2);
}

// maxRequestsPerConnection and idleTimeout on the shared HTTP/2 connections: a connection that
// served its two streams is closed as soon as the second is over (the third request opens a
// new one), and one idle past its cluster's idleTimeout (1 s) is closed by the sweep.
TEST_F(OneWorkerH2, Http2UpstreamConnectionsEndAfterMaxRequestsAndWhenIdle) {
  LOAD_SNAPSHOT(ProductSnapshot("h2-spent", "ALLOW_ANY",
                                testing_support::ProductResources(
                                    "", "{connectionPool: {http: {h2UpgradePolicy: UPGRADE, maxRequestsPerConnection: 2}}}",
                                    "{host: product-service, subset: v2}"),
                                /*sidecars=*/true),
                "h2-spent");
  H2Backend v1(net_->peer, dir_, "10.200.0.2", "v1"), v2(net_->peer, dir_, "10.200.0.3", "v2");
  std::this_thread::sleep_for(300ms);
  RawH2Client c(ConnectApp());
  auto ask = [&] {
    int32_t id = c.Request(Get("/who"));
    EXPECT_TRUE(c.Pump([&] { return c.Closed(id); })) << Log();
    return c.status[id];
  };
  EXPECT_EQ(ask(), "200");
  EXPECT_EQ(UpstreamConnections(), 1);
  EXPECT_EQ(ask(), "200");
  EXPECT_TRUE(WaitFor([&] { return UpstreamConnections() == 0; })) << "spent after two streams";
  EXPECT_EQ(ask(), "200");
  EXPECT_EQ(UpstreamConnections(), 1);

  LOAD_SNAPSHOT(ProductSnapshot("h2-idle", "ALLOW_ANY",
                                testing_support::ProductResources(
                                    "", "{connectionPool: {http: {h2UpgradePolicy: UPGRADE, idleTimeout: 1s}}}",
                                    "{host: product-service, subset: v1}"),
                                /*sidecars=*/true),
                "h2-idle");
  RawH2Client d(ConnectApp());
  int32_t id = d.Request(Get("/who"));
  ASSERT_TRUE(d.Pump([&] { return d.Closed(id); })) << Log();
  EXPECT_EQ(d.body[id], "v1");
  EXPECT_EQ(UpstreamConnections(), 2);
  auto idle_from = std::chrono::steady_clock::now();
  EXPECT_TRUE(WaitFor([&] { return UpstreamConnections() == 1; })) << "v1's connection closed when idle";
  EXPECT_GE(std::chrono::steady_clock::now() - idle_from, 900ms);
}

// The shared upstream connection's window opens as answers arrive: a client that reads none of
// five 1 MiB answers (more than the connection's 1 MiB window, were it held until read) holds
// back only its own streams; another client's request on the same upstream connection is
// answered meanwhile, and the slow client still gets every byte once it reads.
TEST_F(OneWorkerH2, ASlowClientDoesNotStallOthersOnTheSharedConnection) {
  LOAD_SNAPSHOT(ProductSnapshot("h2-slow", "ALLOW_ANY",
                                testing_support::ProductResources("", "{connectionPool: {http: {h2UpgradePolicy: UPGRADE}}}",
                                                                  "{host: product-service, subset: v2}"),
                                /*sidecars=*/true),
                "h2-slow");
  H2Backend v1(net_->peer, dir_, "10.200.0.2", "v1"), v2(net_->peer, dir_, "10.200.0.3", "v2");
  std::this_thread::sleep_for(300ms);
  RawH2Client slow(ConnectApp());
  std::vector<int32_t> big;
  for (int i = 0; i < 5; ++i) big.push_back(slow.Request(Get("/big")));
  ASSERT_TRUE(slow.Flush());  // sent, never read for now
  std::this_thread::sleep_for(500ms);
  RawH2Client other(ConnectApp());
  int32_t id = other.Request(Get("/who"));
  ASSERT_TRUE(other.Pump([&] { return other.Closed(id); }, 3000ms)) << Log();
  EXPECT_EQ(other.body[id], "v2");
  EXPECT_EQ(UpstreamConnections(), 1) << "both clients on one upstream connection";
  ASSERT_TRUE(slow.Pump([&] { return std::all_of(big.begin(), big.end(), [&](int32_t b) { return slow.Closed(b); }); }, 10000ms));
  for (int32_t b : big) EXPECT_EQ(slow.body[b].size(), size_t{1} << 20);
}

// A fault's abort by grpcStatus answers in gRPC's trailers-only form (HTTP 200, grpc-status in
// the one header block, no body), after the fault's delay when both are drawn; the upstream is
// never called. An HTTP/1.1 client gets the same status header.
TEST_F(ProxyH2, AGrpcFaultAbortAnswersWithItsStatusAfterTheDelay) {
  LOAD_SNAPSHOT(ProductSnapshot("grpc-fault", "ALLOW_ANY",
                                testing_support::ProductResources("      fault:\n"
                                                                  "        abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}\n"
                                                                  "        delay: {fixedDelay: 300ms, percentage: {value: 100}}\n",
                                                                  "")),
                "grpc-fault");
  testing_support::Backend v1(net_->peer, {"10.200.0.2", 8080}, "v1");
  ASSERT_TRUE(v1.ok());
  RawH2Client c(ConnectApp());
  auto call = Get("/echo.Echo/Unary");
  call[0].second = "POST";
  call.emplace_back("content-type", "application/grpc");
  call.emplace_back("te", "trailers");
  auto start = std::chrono::steady_clock::now();
  int32_t id = c.Request(call);
  ASSERT_TRUE(c.Pump([&] { return c.Closed(id); })) << Log();
  EXPECT_GE(std::chrono::steady_clock::now() - start, 300ms) << "the delay comes first";
  EXPECT_EQ(c.status[id], "200");
  EXPECT_NE(c.fields[id].find("grpc-status: 14\n"), std::string::npos) << c.fields[id];
  EXPECT_NE(c.fields[id].find("content-type: application/grpc\n"), std::string::npos) << c.fields[id];
  EXPECT_TRUE(c.body[id].empty());
  int app = ConnectApp();
  ASSERT_GE(app, 0);
  std::string res = testing_support::Exchange(app, "POST /echo.Echo/Unary HTTP/1.1\r\nHost: product-service:8080\r\n"
                                                   "Content-Type: application/grpc\r\nContent-Length: 0\r\n\r\n");
  close(app);
  EXPECT_EQ(res.substr(0, 12), "HTTP/1.1 200") << res;
  EXPECT_NE(res.find("grpc-status: 14\r\n"), std::string::npos) << res;
  ASSERT_TRUE(WaitFor([&] { return Count(Log(), "\"response_code\":200,\"response_flags\":\"DI,FI\"") == 2; })) << Log();
  EXPECT_EQ(v1.requests(), 0);
}

// perTryTimeout toward HTTP/2 upstreams: a stream to an endpoint that never answers (it accepts
// nothing) is abandoned after 300 ms and sent to the other, for HTTP/2 and HTTP/1.1 clients.
TEST_F(ProxyH2, APerTryTimeoutMovesAStalledStreamToAnotherEndpoint) {
  LOAD_SNAPSHOT(ProductSnapshot("h2-per-try", "ALLOW_ANY",
                                testing_support::ProductResources(
                                    "      retries: {attempts: 2, perTryTimeout: 300ms, retryOn: reset}\n",
                                    "{loadBalancer: {simple: ROUND_ROBIN}, connectionPool: {http: {h2UpgradePolicy: UPGRADE}}}",
                                    "{host: product-service}"),
                                /*sidecars=*/true),
                "h2-per-try");
  Listener stalled(net_->peer, {"10.200.0.2", 8080});  // the handshake completes in its backlog; nothing answers
  H2Backend live(net_->peer, dir_, "10.200.0.3", "live");
  std::this_thread::sleep_for(300ms);
  for (int i = 0; i < 4; ++i) {
    auto start = std::chrono::steady_clock::now();
    auto run = RunIn(net_->pod, 1000, {"nghttp", "http://10.96.0.20:8080/who"});
    EXPECT_EQ(run.out, "live") << run.err;
    EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  }
  int app = ConnectApp();
  ASSERT_GE(app, 0);
  for (int i = 0; i < 4; ++i) {
    std::string res = testing_support::Exchange(app, "GET /who HTTP/1.1\r\nHost: product-service:8080\r\n\r\n");
    EXPECT_NE(res.find("live"), std::string::npos) << res;
  }
  close(app);
}

}  // namespace
}  // namespace tern::proxy
