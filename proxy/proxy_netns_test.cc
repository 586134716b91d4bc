// tern-proxy behind tern-init's capture, as in a pod: a "pod" namespace wired to a "peer", the
// capture rules installed by the real tern-init, the real tern-proxy running as uid 1337 from a
// snapshot file, and an app uid calling a service by its cluster IP. The bytes go through the
// proxy to the service's endpoint and back; unknown destinations pass through (ALLOW_ANY) or
// are refused (REGISTRY_ONLY after a hot reload); inbound reaches the app from 127.0.0.6; the
// admin port answers; /quitquitquit ends the proxy.
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
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

TEST_F(ProxyInPod, QuitQuitQuitEndsTheProxy) {
  EXPECT_NE(Admin("POST /quitquitquit").find("OK"), std::string::npos);
  EXPECT_EQ(testing_support::WaitExit(proxy_, 5000ms), 0);
  proxy_ = -1;
}

}  // namespace
}  // namespace tern::proxy
