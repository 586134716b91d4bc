// tern-proxy behind tern-init's capture, as in a pod: a "pod" namespace wired to a "peer", the
// capture rules installed by the real tern-init, the real tern-proxy running as uid 1337 from a
// snapshot file, and an app uid calling a service by its cluster IP. The bytes go through the
// proxy to the service's endpoint and back; unknown destinations pass through (ALLOW_ANY) or
// are refused (REGISTRY_ONLY after a hot reload); inbound reaches the app from 127.0.0.6; the
// admin port answers; /quitquitquit ends the proxy.
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/base/files.h"
#include "core/capture/testing/netns_traffic.h"
#include "core/capture/testing/sh.h"
#include "core/testing/subprocess.h"

namespace tern::proxy {
namespace {

using namespace std::chrono_literals;
using nettest::Endpoint;
using nettest::Listener;

const std::string kBin = TERN_BINARY_DIR;

std::string Snapshot(const std::string& version, const std::string& endpoint, const std::string& policy) {
  return "apiVersion: tern.dev/v1alpha1\nkind: ProxySnapshot\nversion: \"" + version + "\"\n"
         "mesh: {outboundTrafficPolicy: " + policy + "}\n"
         "workload: {name: app-1, namespace: my-app, labels: {app: app}}\n"
         "services:\n"
         "- hostname: db.my-app.svc.cluster.local\n"
         "  clusterIPs: [10.96.0.20]\n"
         "  ports: [{name: tcp-db, port: 8080}]\n"
         "endpoints:\n"
         "- {service: db.my-app.svc.cluster.local, address: " + endpoint + ", ports: {tcp-db: 8080}}\n";
}

// A tiny HTTP/1.1 backend on the peer: answers every request on a connection (keep-alive) with
// its name and the request line, until the client closes. One thread per connection, bounded
// by the test's own requests.
class Backend {
 public:
  Backend(const nettest::Netns& ns, const Endpoint& at, std::string name) : listener_(ns, at), name_(std::move(name)) {
    thread_ = std::thread([this] { Serve(); });
  }
  ~Backend() {
    done_ = true;
    thread_.join();
    for (auto& t : conns_) t.join();
  }
  bool ok() const { return listener_.ok(); }
  // Every request's header block, in arrival order.
  std::vector<std::string> seen() const {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_;
  }

 private:
  void Serve() {
    while (!done_) {
      Endpoint local, peer;
      int fd = listener_.AcceptConnection(&local, &peer);  // waits at most three seconds
      if (fd < 0) continue;
      conns_.emplace_back([this, fd] {
        std::string buf;
        char chunk[4096];
        for (;;) {
          size_t end;
          while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
            ssize_t n = recv(fd, chunk, sizeof chunk, 0);
            if (n <= 0) {
              close(fd);
              return;
            }
            buf.append(chunk, static_cast<size_t>(n));
          }
          std::string request_line = buf.substr(0, buf.find("\r\n"));
          std::string headers = buf.substr(0, end);
          buf.erase(0, end + 4);
          {
            std::lock_guard<std::mutex> lock(mu_);
            seen_.push_back(headers);
          }
          // A request body by Content-Length is read whole and counted.
          size_t received = 0;
          if (size_t cl = headers.find("Content-Length: "); cl != std::string::npos) {
            size_t want = std::stoul(headers.substr(cl + 16));
            while (buf.size() < want) {
              ssize_t n = recv(fd, chunk, sizeof chunk, 0);
              if (n <= 0) break;
              buf.append(chunk, static_cast<size_t>(n));
            }
            received = std::min(want, buf.size());
            buf.erase(0, received);
          }
          std::string body = name_ + " " + request_line;
          if (headers.find("x-mesh: tern") != std::string::npos) body += " x-mesh";
          if (received) body += " received " + std::to_string(received);
          if (request_line.find(" /big ") != std::string::npos) body += std::string(300000, 'b');
          if (request_line.find(" /headers ") != std::string::npos) body += "\n" + headers;
          std::string res = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\nx-backend: " + name_ +
                            "\r\n\r\n" + body;
          if (!nettest::SendAll(fd, res)) {
            close(fd);
            return;
          }
        }
      });
    }
  }
  Listener listener_;
  std::string name_;
  mutable std::mutex mu_;
  std::vector<std::string> seen_;
  std::atomic<bool> done_{false};
  std::thread thread_;
  std::vector<std::thread> conns_;
};

// Sends one HTTP/1.1 request on `fd` and returns the whole response (by Content-Length).
std::string Exchange(int fd, const std::string& request) {
  if (!nettest::SendAll(fd, request)) return "";
  std::string out;
  for (int i = 0; i < 70000; ++i) {  // byte by byte up to the header's end: the limit is 64 KiB
    std::string more = nettest::Receive(fd, 1);
    if (more.empty()) break;
    out += more;
    size_t end = out.find("\r\n\r\n");
    if (end == std::string::npos) continue;
    size_t cl = out.find("Content-Length: ");
    if (cl == std::string::npos || cl > end) break;
    size_t length = std::stoul(out.substr(cl + 16));
    if (out.size() < end + 4 + length) out += nettest::Receive(fd, end + 4 + length - out.size());
    break;
  }
  return out;
}

class ProxyInPod : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to create network namespaces";
    net_ = std::make_unique<nettest::PodAndPeer>("px");
    ASSERT_EQ(net_->error(), "");
    char tmpl[] = "/tmp/tern-proxy-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
    chmod(dir_.c_str(), 0755);
    ASSERT_TRUE(WriteFileAtomically(dir_ + "/snapshot.yaml", Snapshot("1", "10.200.0.2", "ALLOW_ANY")).ok());
    ASSERT_TRUE(nettest::Sh("ip netns exec " + net_->pod.name() + " " + kBin +
                            "/init/tern-init -p 15001 -z 15006 -u 1337 -g 1337 -m REDIRECT -i '*' -x '' -b '*' "
                            "-d 15090,15021,15020"));
    // The sidecar as injected: uid/gid 1337, its own ports.
    proxy_ = testing_support::Spawn({"/usr/bin/env", "ip", "netns", "exec", net_->pod.name(), "setpriv", "--reuid",
                                     "1337", "--regid", "1337", "--clear-groups", kBin + "/proxy/tern-proxy",
                                     "--config", dir_ + "/snapshot.yaml", "--concurrency", "2"},
                                    {{"PATH", "/usr/sbin:/usr/bin:/sbin:/bin"}}, dir_ + "/proxy.log");
    ASSERT_GT(proxy_, 0);
    ASSERT_TRUE(WaitFor([&] { return Admin("GET /ready").find("LIVE") != std::string::npos; })) << Log();
  }
  void TearDown() override {
    testing_support::Stop(proxy_);
    if (!dir_.empty()) std::system(("rm -rf " + dir_).c_str());
  }

  // One request to the admin port from inside the pod (localhost is never captured).
  std::string Admin(const std::string& request_line) {
    int fd = nettest::ConnectSocket(net_->pod, {"127.0.0.1", 15000}, 0);
    if (fd < 0) return "";
    nettest::SendAll(fd, request_line + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    std::string out = nettest::Receive(fd, 1 << 20);
    close(fd);
    return out;
  }
  template <class F>
  static bool WaitFor(F done) {
    for (int i = 0; i < 100; ++i) {
      if (done()) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }
  std::string Log() const { return *ReadFile(dir_ + "/proxy.log"); }

  // app (uid 1000) -> `to`, then a round trip of bytes with whoever accepts on `server`.
  void RoundTrip(const Endpoint& to, Listener& server, Endpoint* accepted_at, Endpoint* accepted_from) {
    int app = nettest::ConnectSocket(net_->pod, to, 1000);
    ASSERT_GE(app, 0);
    int srv = server.AcceptConnection(accepted_at, accepted_from);
    ASSERT_GE(srv, 0) << Log();
    ASSERT_TRUE(nettest::SendAll(app, "ping from the app"));
    EXPECT_EQ(nettest::Receive(srv, 17), "ping from the app");
    ASSERT_TRUE(nettest::SendAll(srv, "pong"));
    EXPECT_EQ(nettest::Receive(app, 4), "pong");
    close(app);
    EXPECT_EQ(nettest::Receive(srv, 1), "") << "the app's close reaches the server";
    close(srv);
  }

  std::unique_ptr<nettest::PodAndPeer> net_;
  std::string dir_;
  pid_t proxy_ = -1;
};

TEST_F(ProxyInPod, AServiceCallGoesThroughTheProxyToAnEndpoint) {
  Listener db(net_->peer, {"10.200.0.2", 8080});
  ASSERT_TRUE(db.ok());
  Endpoint at, from;
  RoundTrip({"10.96.0.20", 8080}, db, &at, &from);
  EXPECT_EQ(at, (Endpoint{"10.200.0.2", 8080})) << "the cluster IP became an endpoint";
  EXPECT_EQ(from.ip, "10.200.0.1");
  // The access log names the service and the endpoint.
  ASSERT_TRUE(WaitFor([&] { return Log().find("\"service\":\"db.my-app.svc.cluster.local\"") != std::string::npos; }));
  EXPECT_NE(Log().find("\"upstream\":\"10.200.0.2:8080\""), std::string::npos) << Log();
  EXPECT_NE(Admin("GET /stats/prometheus").find("istio_tcp_connections_opened_total{reporter=\"source\","
                                                "destination_service=\"db.my-app.svc.cluster.local\"} 1"),
            std::string::npos);
}

TEST_F(ProxyInPod, UnknownDestinationsPassThroughThenAreRefusedAfterAReload) {
  Listener other(net_->peer, {"10.200.0.3", 9000});
  ASSERT_TRUE(other.ok());
  Endpoint at, from;
  RoundTrip({"10.200.0.3", 9000}, other, &at, &from);
  EXPECT_EQ(at, (Endpoint{"10.200.0.3", 9000}));

  // Hot reload: the service moves to 10.200.0.3 and the mesh turns REGISTRY_ONLY.
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/snapshot.yaml", Snapshot("2", "10.200.0.3", "REGISTRY_ONLY")).ok());
  ASSERT_TRUE(WaitFor([&] { return Admin("GET /config_dump").find("\"version\": \"2\"") != std::string::npos; }));
  Listener moved(net_->peer, {"10.200.0.3", 8080});
  ASSERT_TRUE(moved.ok());
  RoundTrip({"10.96.0.20", 8080}, moved, &at, &from);
  EXPECT_EQ(at, (Endpoint{"10.200.0.3", 8080}));
  int app = nettest::ConnectSocket(net_->pod, {"10.200.0.3", 9000}, 1000);
  ASSERT_GE(app, 0) << "the proxy accepts the captured connection...";
  EXPECT_EQ(nettest::Receive(app, 1), "") << "...and closes it: not in the registry";
  close(app);
  Endpoint l, o;
  EXPECT_FALSE(other.Accept(&l, &o)) << "nothing reached the unknown destination";
  EXPECT_NE(Log().find("\"response_flags\":\"NR\""), std::string::npos);

  // A broken snapshot is refused and the last good one stays.
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/snapshot.yaml", "apiVersion: tern.dev/v1alpha1\nkind: ProxySnapshot\nservices: 7\n").ok());
  ASSERT_TRUE(WaitFor([&] { return Log().find("config refused") != std::string::npos; }));
  EXPECT_NE(Log().find("services: must be a list"), std::string::npos) << Log();
  EXPECT_NE(Admin("GET /config_dump").find("\"version\": \"2\""), std::string::npos);
}

TEST_F(ProxyInPod, InboundReachesTheAppFromThePassthroughAddress) {
  Listener app(net_->pod, {"0.0.0.0", 9080});
  ASSERT_TRUE(app.ok());
  int client = nettest::ConnectSocket(net_->peer, {"10.200.0.1", 9080}, 0);
  ASSERT_GE(client, 0);
  Endpoint at, from;
  int srv = app.AcceptConnection(&at, &from);
  ASSERT_GE(srv, 0) << Log();
  EXPECT_EQ(from.ip, "127.0.0.6") << "the proxy's connection to the app is exempt from capture";
  EXPECT_EQ(at, (Endpoint{"10.200.0.1", 9080}));
  ASSERT_TRUE(nettest::SendAll(client, "inbound"));
  EXPECT_EQ(nettest::Receive(srv, 7), "inbound");
  close(client);
  close(srv);
}

// The seed's product-service: its VirtualService and DestinationRule verbatim (from
// core/config/testdata/seed.yaml), v1 and v2 endpoints on the peer.
std::string ProductSnapshot(const std::string& version, const std::string& policy, const std::string& resources) {
  return "apiVersion: tern.dev/v1alpha1\nkind: ProxySnapshot\nversion: " + version + "\n"
         "mesh: {outboundTrafficPolicy: " + policy + "}\n"
         "workload: {name: web-1, namespace: my-app, labels: {app: web}}\n"
         "services:\n"
         "- hostname: product-service.my-app.svc.cluster.local\n"
         "  clusterIPs: [10.96.0.20]\n"
         "  ports: [{name: http, port: 8080}]\n"
         "endpoints:\n"
         "- {service: product-service.my-app.svc.cluster.local, address: 10.200.0.2, ports: {http: 8080}, labels: {version: v1}}\n"
         "- {service: product-service.my-app.svc.cluster.local, address: 10.200.0.3, ports: {http: 8080}, labels: {version: v2}}\n" +
         resources;
}

std::string SeedSnapshot() {
  std::string seed = *ReadFile(std::string(TERN_SOURCE_DIR) + "/core/config/testdata/seed.yaml");
  return ProductSnapshot("seed", "ALLOW_ANY", seed.substr(seed.find("resources:")));
}

TEST_F(ProxyInPod, HttpRequestsFollowTheSeedsCanaryRouting) {
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/snapshot.yaml", SeedSnapshot()).ok());
  ASSERT_TRUE(WaitFor([&] { return Admin("GET /config_dump").find("\"version\": \"seed\"") != std::string::npos; })) << Log();
  Backend v1(net_->peer, {"10.200.0.2", 8080}, "v1"), v2(net_->peer, {"10.200.0.3", 8080}, "v2");
  ASSERT_TRUE(v1.ok() && v2.ok());
  int app = nettest::ConnectSocket(net_->pod, {"10.96.0.20", 8080}, 1000);
  ASSERT_GE(app, 0);
  // x-canary: "true" always reaches v2.
  for (int i = 0; i < 20; ++i) {
    std::string res = Exchange(app, "GET /items HTTP/1.1\r\nHost: product-service:8080\r\nx-canary: true\r\n\r\n");
    ASSERT_NE(res.find("HTTP/1.1 200"), std::string::npos) << res << Log();
    EXPECT_NE(res.find("x-backend: v2"), std::string::npos) << res;
    EXPECT_NE(res.find("v2 GET /items HTTP/1.1"), std::string::npos) << res;
  }
  // Without it, 90/10 over one keep-alive connection (the exact split is the router's unit test;
  // here 400 requests land within four standard deviations of 40 on v2).
  int on_v2 = 0;
  for (int i = 0; i < 400; ++i) {
    std::string res = Exchange(app, "GET / HTTP/1.1\r\nHost: product-service\r\n\r\n");
    ASSERT_NE(res.find("HTTP/1.1 200"), std::string::npos) << res;
    on_v2 += res.find("x-backend: v2") != std::string::npos;
  }
  EXPECT_GE(on_v2, 15);
  EXPECT_LE(on_v2, 70);
  close(app);
  EXPECT_NE(Log().find("\"route\":\"my-app/product-service\""), std::string::npos);
  EXPECT_NE(Log().find("\"cluster\":\"outbound|8080|v2|product-service.my-app.svc.cluster.local\""), std::string::npos);
}

TEST_F(ProxyInPod, LargeBodiesStreamBothWays) {
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/snapshot.yaml", SeedSnapshot()).ok());
  ASSERT_TRUE(WaitFor([&] { return Admin("GET /config_dump").find("\"version\": \"seed\"") != std::string::npos; }));
  Backend v1(net_->peer, {"10.200.0.2", 8080}, "v1"), v2(net_->peer, {"10.200.0.3", 8080}, "v2");
  int app = nettest::ConnectSocket(net_->pod, {"10.96.0.20", 8080}, 1000);
  ASSERT_GE(app, 0);
  std::string upload(200000, 'u');
  for (int i = 0; i < 3; ++i) {  // several on one keep-alive connection
    std::string res = Exchange(app, "POST /upload HTTP/1.1\r\nHost: product-service\r\nContent-Length: 200000\r\n\r\n" + upload);
    ASSERT_NE(res.find("HTTP/1.1 200"), std::string::npos) << res.substr(0, 200);
    EXPECT_NE(res.find("received 200000"), std::string::npos) << res.substr(0, 300);
    res = Exchange(app, "GET /big HTTP/1.1\r\nHost: product-service\r\n\r\n");
    ASSERT_NE(res.find("HTTP/1.1 200"), std::string::npos);
    size_t body = res.find("\r\n\r\n");
    EXPECT_EQ(res.size() - body - 4, std::string("v1 GET /big HTTP/1.1").size() + 300000) << "the whole body, in order";
    EXPECT_EQ(res.find_first_not_of('b', res.find(" HTTP/1.1", body) + 9), std::string::npos);
  }
  close(app);
}

TEST_F(ProxyInPod, BadHttpIsRefusedAndTheConnectionClosed) {
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/snapshot.yaml", SeedSnapshot()).ok());
  ASSERT_TRUE(WaitFor([&] { return Admin("GET /config_dump").find("\"version\": \"seed\"") != std::string::npos; }));
  Backend v1(net_->peer, {"10.200.0.2", 8080}, "v1"), v2(net_->peer, {"10.200.0.3", 8080}, "v2");
  const std::pair<std::string, std::string> cases[] = {
      {"POST / HTTP/1.1\r\nHost: product-service\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "400"},
      {"POST / HTTP/1.1\r\nHost: product-service\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", "400"},
      {"POST / HTTP/1.1\r\nHost: product-service\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "400"},
      {"GET / HTTP/1.1\r\nHost: product-service\r\nX-Folded: a\r\n b\r\n\r\n", "400"},
      {"GET / HTTP/1.1\r\nHost: product-service\r\nX-Split: a\rb\r\n\r\n", "400"},
      {"GET / HTTP/1.1\nHost: product-service\r\n\r\n", "400"},
      {"GET / HTTP/1.1\r\nHost: product-service\r\nX-Big: " + std::string(70000, 'a') + "\r\n\r\n", "431"},
  };
  for (const auto& [bad, status] : cases) {
    SCOPED_TRACE(bad.substr(0, 60));
    int app = nettest::ConnectSocket(net_->pod, {"10.96.0.20", 8080}, 1000);
    ASSERT_GE(app, 0);
    std::string res = Exchange(app, bad);
    EXPECT_EQ(res.substr(0, 12), "HTTP/1.1 " + status) << res;
    EXPECT_EQ(nettest::Receive(app, 1), "") << "the connection is closed after a refusal";
    close(app);
  }
  // ...and the proxy keeps serving everyone else.
  int app = nettest::ConnectSocket(net_->pod, {"10.96.0.20", 8080}, 1000);
  ASSERT_GE(app, 0);
  EXPECT_NE(Exchange(app, "GET / HTTP/1.1\r\nHost: product-service\r\n\r\n").find("HTTP/1.1 200"), std::string::npos);
  close(app);
}

// Loads `snapshot` and waits until the admin port shows `version`.
#define LOAD_SNAPSHOT(snapshot, version)                                                                       \
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/snapshot.yaml", snapshot).ok());                                    \
  ASSERT_TRUE(WaitFor([&] { return Admin("GET /config_dump").find("\"version\": \"" version "\"") != std::string::npos; })) \
      << Log()

TEST_F(ProxyInPod, InboundHttpReachesTheAppWithoutSteeringHeaders) {
  Backend app(net_->pod, {"0.0.0.0", 9080}, "app");
  ASSERT_TRUE(app.ok());
  int client = nettest::ConnectSocket(net_->peer, {"10.200.0.1", 9080}, 0);
  ASSERT_GE(client, 0);
  std::string res = Exchange(client, "GET /headers HTTP/1.1\r\nHost: web\r\nx-envoy-retry-on: 5xx\r\n"
                                     "X-Envoy-Upstream-Rq-Timeout-Ms: 1\r\nx-forwarded-client-cert: By=spiffe://evil\r\n"
                                     "x-tern-internal: 1\r\nx-request-id: abc\r\n\r\n");
  ASSERT_NE(res.find("HTTP/1.1 200"), std::string::npos) << res << Log();
  EXPECT_NE(res.find("x-request-id: abc"), std::string::npos) << res;
  for (const char* stripped : {"x-envoy-retry-on", "X-Envoy-Upstream", "x-forwarded-client-cert", "x-tern-internal"}) {
    EXPECT_EQ(res.find(stripped), std::string::npos) << stripped << " reached the app:\n" << res;
  }
  close(client);
  ASSERT_TRUE(WaitFor([&] { return Log().find("\"cluster\":\"inbound|9080||\"") != std::string::npos; })) << Log();
}

TEST_F(ProxyInPod, TheAppCannotClaimAClientCertificateButMaySteerItsOwnCalls) {
  LOAD_SNAPSHOT(SeedSnapshot(), "seed");
  Backend v1(net_->peer, {"10.200.0.2", 8080}, "v1"), v2(net_->peer, {"10.200.0.3", 8080}, "v2");
  int app = nettest::ConnectSocket(net_->pod, {"10.96.0.20", 8080}, 1000);
  ASSERT_GE(app, 0);
  std::string res = Exchange(app, "GET /headers HTTP/1.1\r\nHost: product-service\r\nx-forwarded-client-cert: By=x\r\n"
                                  "x-envoy-upstream-rq-timeout-ms: 500\r\n\r\n");
  ASSERT_NE(res.find("HTTP/1.1 200"), std::string::npos) << res;
  EXPECT_EQ(res.find("x-forwarded-client-cert"), std::string::npos) << res;
  EXPECT_NE(res.find("x-envoy-upstream-rq-timeout-ms: 500"), std::string::npos) << res;
  close(app);
}

TEST_F(ProxyInPod, RegistryOnlyAnswersHttpToUnknownHostsWith502) {
  LOAD_SNAPSHOT(ProductSnapshot("ro", "REGISTRY_ONLY", ""), "ro");
  Listener other(net_->peer, {"10.200.0.3", 9000});
  ASSERT_TRUE(other.ok());
  int app = nettest::ConnectSocket(net_->pod, {"10.200.0.3", 9000}, 1000);
  ASSERT_GE(app, 0);
  std::string res = Exchange(app, "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n");
  EXPECT_EQ(res.substr(0, 12), "HTTP/1.1 502") << res;
  EXPECT_NE(res.find("REGISTRY_ONLY"), std::string::npos) << res;
  close(app);
  Endpoint l, o;
  EXPECT_FALSE(other.Accept(&l, &o)) << "nothing reached the unknown destination";
  EXPECT_NE(Log().find("\"cluster\":\"BlackHoleCluster\""), std::string::npos) << Log();
}

TEST_F(ProxyInPod, MirroredRequestsReachTheShadowAndTheClientOnlySeesThePrimary) {
  const std::string resources = R"(resources:
- apiVersion: networking.istio.io/v1beta1
  kind: VirtualService
  metadata: {name: product-service, namespace: my-app}
  spec:
    hosts: [product-service]
    http:
    - route:
      - destination: {host: product-service, subset: v1}
      mirror: {host: product-service, subset: v2}
      mirrorPercentage: {value: 50}
- apiVersion: networking.istio.io/v1beta1
  kind: DestinationRule
  metadata: {name: product-service, namespace: my-app}
  spec:
    host: product-service
    subsets:
    - {name: v1, labels: {version: v1}}
    - {name: v2, labels: {version: v2}}
)";
  LOAD_SNAPSHOT(ProductSnapshot("mirror", "ALLOW_ANY", resources), "mirror");
  Backend v1(net_->peer, {"10.200.0.2", 8080}, "v1"), v2(net_->peer, {"10.200.0.3", 8080}, "v2");
  int app = nettest::ConnectSocket(net_->pod, {"10.96.0.20", 8080}, 1000);
  ASSERT_GE(app, 0);
  const int kRequests = 200;
  for (int i = 0; i < kRequests; ++i) {
    std::string res = Exchange(app, "POST /orders HTTP/1.1\r\nHost: product-service:8080\r\nContent-Length: 5\r\n\r\nhello");
    ASSERT_NE(res.find("x-backend: v1"), std::string::npos) << res;
  }
  close(app);
  // Mirrors are fire and forget: wait until they have landed (bounded).
  WaitFor([&] { return v2.seen().size() >= 70; });
  auto shadow = v2.seen();
  // 50% of 200: 100 expected, sd ~7; within five sd.
  EXPECT_GE(shadow.size(), 65u);
  EXPECT_LE(shadow.size(), 135u);
  ASSERT_FALSE(shadow.empty());
  EXPECT_NE(shadow[0].find("POST /orders HTTP/1.1"), std::string::npos) << shadow[0];
  EXPECT_NE(shadow[0].find("product-service-shadow:8080"), std::string::npos) << shadow[0];
  EXPECT_NE(shadow[0].find("Content-Length: 5"), std::string::npos) << shadow[0];
}

TEST_F(ProxyInPod, QuitQuitQuitEndsTheProxy) {
  EXPECT_NE(Admin("POST /quitquitquit").find("OK"), std::string::npos);
  EXPECT_EQ(testing_support::WaitExit(proxy_, 5000ms), 0);
  proxy_ = -1;
}

}  // namespace
}  // namespace tern::proxy
