// HTTP/2 through tern-proxy behind the capture, as in a pod: nghttp (prior knowledge) calling
// nghttpd backends by cluster IP under the seed's VirtualService and DestinationRule; gRPC end to
// end (unary, both streaming directions, trailers, an error status) between real grpcio client
// and server; and what a hostile client sends (bad pseudo-headers, a CONTINUATION flood, rapid
// reset), each refused while the proxy keeps serving.
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/base/files.h"
#include "core/capture/testing/netns_traffic.h"
#include "core/testing/subprocess.h"
#include "proxy/testing/proxy_in_pod.h"
#include "proxy/testing/raw_h2_client.h"

namespace tern::proxy {
namespace {

using namespace std::chrono_literals;
using nettest::Endpoint;
using nettest::Listener;
using testing_support::Count;
using testing_support::OneServiceSnapshot;
using testing_support::ProductSnapshot;
using testing_support::ProxyInPod;
using testing_support::RawH2Client;
using testing_support::ReceiveUntil;
using testing_support::SeedSnapshot;
using tern::testing_support::Spawn;
using tern::testing_support::Stop;

const std::map<std::string, std::string> kEnv = {{"PATH", "/usr/sbin:/usr/bin:/sbin:/bin"}};

// Runs `argv` in `ns` as `uid` (0: root) and returns what it printed.
tern::testing_support::ProcessResult RunIn(const nettest::Netns& ns, int uid, std::vector<std::string> argv,
                                     std::chrono::milliseconds deadline = 20000ms) {
  std::vector<std::string> full = {"/usr/bin/env", "ip", "netns", "exec", ns.name()};
  if (uid) {
    std::string id = std::to_string(uid);
    full.insert(full.end(), {"setpriv", "--reuid", id, "--regid", id, "--clear-groups"});
  }
  full.insert(full.end(), argv.begin(), argv.end());
  return tern::testing_support::RunProcess(full, kEnv, "", deadline);
}

// An HTTP/2 backend on the peer: nghttpd serving `name` at /who and 1 MiB at /big, echoing
// uploads.
class H2Backend {
 public:
  H2Backend(const nettest::Netns& ns, const std::string& dir, const std::string& address, const std::string& name)
      : docs_(dir + "/" + name) {
    std::system(("mkdir -p " + docs_).c_str());
    EXPECT_TRUE(WriteFileAtomically(docs_ + "/who", name).ok());
    EXPECT_TRUE(WriteFileAtomically(docs_ + "/big", std::string(1 << 20, 'b')).ok());
    pid_ = tern::testing_support::Spawn({"/usr/bin/env", "ip", "netns", "exec", ns.name(), "nghttpd", "--no-tls", "--echo-upload",
                                   "-a", address, "-d", docs_, "8080"},
                                  kEnv, dir + "/" + name + ".log");
  }
  ~H2Backend() { tern::testing_support::Stop(pid_); }

 private:
  std::string docs_;
  pid_t pid_ = -1;
};

std::vector<std::pair<std::string, std::string>> Get(const std::string& path, const std::string& authority = "product-service:8080") {
  return {{":method", "GET"}, {":scheme", "http"}, {":authority", authority}, {":path", path}};
}

// An HTTP/2 frame header + payload.
std::string Frame(uint8_t type, uint8_t flags, uint32_t stream, const std::string& payload) {
  std::string f;
  f.push_back(static_cast<char>(payload.size() >> 16));
  f.push_back(static_cast<char>(payload.size() >> 8));
  f.push_back(static_cast<char>(payload.size()));
  f.push_back(static_cast<char>(type));
  f.push_back(static_cast<char>(flags));
  for (int shift : {24, 16, 8, 0}) f.push_back(static_cast<char>(stream >> shift));
  return f + payload;
}

// HPACK "literal header field without indexing, new name", lengths under 127 or encoded.
std::string Literal(const std::string& name, const std::string& value) {
  auto length = [](size_t n) {
    std::string out;
    if (n < 127) return std::string(1, static_cast<char>(n));
    out.push_back(127);
    n -= 127;
    while (n >= 128) {
      out.push_back(static_cast<char>((n & 0x7f) | 0x80));
      n >>= 7;
    }
    out.push_back(static_cast<char>(n));
    return out;
  };
  return std::string(1, '\0') + length(name.size()) + name + length(value.size()) + value;
}

// A client written frame by frame, for what even an unchecked nghttp2 session will not send
// (streams past the peer's limit, windows pushed to overflow). It acknowledges every SETTINGS
// and notes RST_STREAM and GOAWAY.
struct FrameByFrameClient {
  explicit FrameByFrameClient(int socket) : fd(socket) {}
  ~FrameByFrameClient() { close(fd); }
  FrameByFrameClient(const FrameByFrameClient&) = delete;
  FrameByFrameClient& operator=(const FrameByFrameClient&) = delete;
  // HEADERS for GET /who on `stream` (:method GET, :scheme http, :path and :authority literal).
  static std::string GetWho(uint32_t stream) {
    return Frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_STREAM | NGHTTP2_FLAG_END_HEADERS, stream,
                 "\x82\x86" + Literal(":path", "/who") + Literal(":authority", "product-service:8080"));
  }
  bool Send(const std::string& bytes) const { return nettest::SendAll(fd, bytes); }
  // Sends the preface and an empty SETTINGS, and waits until the proxy's SETTINGS are acknowledged.
  bool Start() {
    if (!Send(std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") + Frame(NGHTTP2_SETTINGS, 0, 0, ""))) return false;
    ReadFor(2000ms, [&] { return settings_acked >= 1; });
    ReadFor(200ms, [] { return false; });  // every SETTINGS acknowledged
    return settings_acked >= 1;
  }
  void ReadFor(std::chrono::milliseconds d, const std::function<bool()>& done) {
    auto end = std::chrono::steady_clock::now() + d;
    while (!done() && std::chrono::steady_clock::now() < end) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 20) != 1) continue;
      char buf[16384];
      ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return;
      in.append(buf, static_cast<size_t>(n));
      while (in.size() >= 9) {
        size_t length = static_cast<uint8_t>(in[0]) << 16 | static_cast<uint8_t>(in[1]) << 8 | static_cast<uint8_t>(in[2]);
        if (in.size() < 9 + length) break;
        const auto type = static_cast<uint8_t>(in[3]), flags = static_cast<uint8_t>(in[4]);
        auto u32 = [&](size_t at) {
          return static_cast<uint32_t>(static_cast<uint8_t>(in[at])) << 24 | static_cast<uint32_t>(static_cast<uint8_t>(in[at + 1])) << 16 |
                 static_cast<uint32_t>(static_cast<uint8_t>(in[at + 2])) << 8 | static_cast<uint8_t>(in[at + 3]);
        };
        const uint32_t stream = u32(5) & 0x7fffffff;
        if (type == NGHTTP2_SETTINGS && !(flags & NGHTTP2_FLAG_ACK)) {
          Send(Frame(NGHTTP2_SETTINGS, NGHTTP2_FLAG_ACK, 0, ""));
          ++settings_acked;
        }
        if (type == NGHTTP2_RST_STREAM) resets[stream] = u32(9);
        if (type == NGHTTP2_GOAWAY) goaway = static_cast<int>(u32(13));
        in.erase(0, 9 + length);
      }
    }
  }

  int fd;
  std::string in;
  std::map<uint32_t, uint32_t> resets;
  int goaway = -1, settings_acked = 0;
};

std::string U32(uint32_t v) { return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)}; }

class ProxyH2 : public ProxyInPod {
 protected:
  // The seed's endpoints run sidecars here: its h2UpgradePolicy UPGRADE makes their upstream
  // HTTP/2 (the nghttpd backends speak nothing else).
  void LoadSeed() { LOAD_SNAPSHOT(SeedSnapshot(true), "seed"); }
  int ConnectApp() { return nettest::ConnectSocket(net_->pod, {"10.96.0.20", 8080}, 1000); }
  // A frame-by-frame client on a new connection to the seed's service, SETTINGS exchanged.
  std::unique_ptr<FrameByFrameClient> FrameByFrame() {
    int fd = ConnectApp();
    if (fd < 0) return nullptr;
    auto c = std::make_unique<FrameByFrameClient>(fd);
    if (!c->Start()) return nullptr;
    return c;
  }
  // nghttp through the proxy to HTTP/1.1-only backends: routes, bodies both ways, shared upstreams.
  void ExpectHttp2ReachesHttp1Backends();
  // After a hostile client was dealt with, a new client is served (the seed splits 90/10: both
  // subsets are up).
  void ExpectOthersAreServed() {
    H2Backend v1(net_->peer, dir_, "10.200.0.2", "v1"), v2(net_->peer, dir_, "10.200.0.3", "v2");
    std::this_thread::sleep_for(300ms);
    RawH2Client next(ConnectApp());
    int32_t id = next.Request(Get("/who"));
    ASSERT_TRUE(next.Pump([&] { return next.Closed(id); })) << Log();
    EXPECT_EQ(next.status[id], "200");
  }
};

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

void ProxyH2::ExpectHttp2ReachesHttp1Backends() {
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
