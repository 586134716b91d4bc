// tern-cni as containerd runs it. containerd's go-cni library (built here with Debian's Go)
// runs a conflist of the reference bridge + host-local plugins with tern-cni chained last,
// inside a "node" network namespace that holds the bridge and a fake Kubernetes API serving
// the pod. Then traffic proves the capture from the "pod" namespace: app connections land on
// the outbound listener with their original destination, inbound lands on 15006, the proxy's
// uid and every exclusion go straight out, for IPv4 and IPv6. CHECK notices a rule deleted by
// hand, and DEL leaves the pod's ruleset as it was.
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "core/base/files.h"
#include "core/capture/testing/netns_traffic.h"
#include "core/kube/fake_apiserver.h"
#include "core/testing/subprocess.h"

namespace tern {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using nettest::Connect;
using nettest::Endpoint;
using nettest::Listener;
using nettest::Netns;
using testing_support::ProcessResult;
using testing_support::RunProcess;

const std::string kBin = TERN_BINARY_DIR;
const std::string kSrc = TERN_SOURCE_DIR;
const std::string kToken = "node-cni-token";
constexpr const char* kPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

// The fake API server, listening inside `ns`: a socket belongs to the namespace of the thread
// that made it, and the server's threads start from that one.
std::unique_ptr<kube::FakeApiServer> ApiServerIn(const Netns& ns) {
  std::unique_ptr<kube::FakeApiServer> api;
  std::thread([&] {
    int fd = open(ns.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) return;
    close(fd);
    api = std::make_unique<kube::FakeApiServer>(kToken);
  }).join();
  return api;
}

class GoCniE2e : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to create network namespaces";
    for (const char* need : {"/usr/bin/go", "/usr/lib/cni/bridge", "/usr/lib/cni/host-local",
                             "/usr/share/gocode/src/github.com/containerd/go-cni/cni.go"}) {
      ASSERT_TRUE(Exists(need)) << need << " is missing: scripts/install-deps.sh installs golang-go, "
                                << "golang-github-containerd-go-cni-dev and containernetworking-plugins";
    }
    driver_ = kBin + "/e2e/gocni-driver";
    // GOPATH mode against Debian's packaged sources: no module download, no network.
    ProcessResult build = RunProcess(
        {"/usr/bin/go", "build", "-o", driver_, kSrc + "/e2e/cni/gocni_driver.go"},
        {{"PATH", kPath}, {"HOME", kBin}, {"GO111MODULE", "off"}, {"GOPATH", "/usr/share/gocode"},
         {"GOCACHE", kBin + "/e2e/gocache"}, {"GOFLAGS", "-buildvcs=false"}},
        "", 240s);
    ASSERT_EQ(build.exit_code, 0) << "go build of the go-cni driver failed:\n" << build.out << build.err;

    char tmpl[] = "/tmp/tern-gocni-XXXXXX";
    dir_ = mkdtemp(tmpl);
    node_ = std::make_unique<Netns>("node");
    pod_ = std::make_unique<Netns>("gpod");
    // Addresses are usable at once: duplicate address detection would hold IPv6 back a second.
    for (const Netns* ns : {node_.get(), pod_.get()}) {
      ns->Exec("sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0");
    }
    api_ = ApiServerIn(*node_);
    ASSERT_TRUE(api_);
    api_->Put("/api/v1/namespaces/my-app/pods/web",
              {{"apiVersion", "v1"},
               {"kind", "Pod"},
               {"metadata",
                {{"name", "web"},
                 {"namespace", "my-app"},
                 // What the webhook writes in CNI mode, with one excluded port and range.
                 {"annotations",
                  {{"sidecar.istio.io/status", R"({"initContainers":["istio-validation","istio-proxy"]})"},
                   {"sidecar.istio.io/interceptionMode", "REDIRECT"},
                   {"traffic.sidecar.istio.io/includeOutboundIPRanges", "*"},
                   {"traffic.sidecar.istio.io/excludeOutboundIPRanges", "10.22.0.254/32"},
                   {"traffic.sidecar.istio.io/includeInboundPorts", "*"},
                   {"traffic.sidecar.istio.io/excludeInboundPorts", "15090,15021,15020"},
                   {"traffic.sidecar.istio.io/includeOutboundPorts", ""},
                   {"traffic.sidecar.istio.io/excludeOutboundPorts", "8081"},
                   {"traffic.sidecar.istio.io/excludeInterfaces", ""}}}}}});
    ASSERT_TRUE(WriteFileAtomically(dir_ + "/tern-cni.kubeconfig", api_->Kubeconfig()).ok());
    json conflist = {
        {"cniVersion", "1.0.0"},
        {"name", "tern-e2e"},
        {"plugins",
         {{{"type", "bridge"},
           {"bridge", "cni-tern0"},
           {"isGateway", true},
           {"ipMasq", false},
           {"ipam",
            {{"type", "host-local"},
             {"dataDir", dir_ + "/ipam"},
             {"ranges", {{{{"subnet", "10.22.0.0/24"}}}, {{{"subnet", "fd00:22::/64"}}}}},
             {"routes", {{{"dst", "0.0.0.0/0"}}, {{"dst", "::/0"}}}}}}},
          {{"type", "tern-cni"},
           {"kubernetes", {{"kubeconfig", dir_ + "/tern-cni.kubeconfig"}, {"excludeNamespaces", {"kube-system"}}}}}}}};
    ASSERT_TRUE(WriteFileAtomically(dir_ + "/tern.conflist", conflist.dump(2)).ok());
  }

  void TearDown() override {
    if (!dir_.empty()) std::system(("rm -rf " + dir_).c_str());
  }

  // One go-cni operation, run inside the node namespace as containerd would run it on a node.
  ProcessResult GoCni(const std::string& op) {
    return RunProcess({"/usr/bin/env", "ip", "netns", "exec", node_->name(), driver_, "-op", op, "-conflist",
                       dir_ + "/tern.conflist", "-bin-dirs", "/usr/lib/cni:" + kBin + "/cni-plugin", "-netns",
                       pod_->path(), "-id", "sandbox-0001", "-pod-name", "web", "-pod-namespace", "my-app",
                       "-timeout", "30s"},
                      {{"PATH", kPath}}, "", 60s);
  }

  std::string driver_, dir_;
  std::unique_ptr<Netns> node_, pod_;
  std::unique_ptr<kube::FakeApiServer> api_;
};

TEST_F(GoCniE2e, ContainerdsLibraryWiresAPodWhoseTrafficIsCaptured) {
  std::string before = pod_->Exec("nft list ruleset");
  ProcessResult add = GoCni("add");
  ASSERT_EQ(add.exit_code, 0) << add.out << add.err;
  json ips = json::parse(add.out)["ips"];
  std::string pod4, pod6;
  for (const auto& ip : ips) (ip.get<std::string>().find(':') == std::string::npos ? pod4 : pod6) = ip;
  ASSERT_FALSE(pod4.empty()) << add.out;
  ASSERT_FALSE(pod6.empty()) << add.out;
  EXPECT_NE(add.err.find("tern-cni: ADD pod my-app/web: capture installed"), std::string::npos) << add.err;
  EXPECT_GE(api_->requests(), 1);

  // A second address on the node side of the bridge, for the excluded range.
  ASSERT_TRUE(nettest::Sh("ip -n " + node_->name() + " addr add 10.22.0.254/32 dev cni-tern0"));
  Listener out4(*pod_, {"0.0.0.0", 15001}), out6(*pod_, {"::", 15001});
  Listener in4(*pod_, {"0.0.0.0", 15006}), in6(*pod_, {"::", 15006});
  Listener app80(*node_, {"0.0.0.0", 80}), app8081(*node_, {"0.0.0.0", 8081}), app6(*node_, {"::", 80});
  for (Listener* l : {&out4, &out6, &in4, &in6, &app80, &app8081, &app6}) ASSERT_TRUE(l->ok());
  Endpoint local, original;

  // An app's outbound connection reaches the sidecar's outbound listener, which can tell where
  // it was going.
  ASSERT_TRUE(Connect(*pod_, {"10.22.0.1", 80}, 1000));
  ASSERT_TRUE(out4.Accept(&local, &original));
  EXPECT_EQ(original, (Endpoint{"10.22.0.1", 80}));
  ASSERT_TRUE(Connect(*pod_, {"fd00:22::1", 80}, 1000));
  ASSERT_TRUE(out6.Accept(&local, &original));
  EXPECT_EQ(original, (Endpoint{"fd00:22::1", 80}));

  // Inbound to an app port reaches the inbound listener.
  ASSERT_TRUE(Connect(*node_, {pod4, 9080}, 0));
  ASSERT_TRUE(in4.Accept(&local, &original));
  EXPECT_EQ(original, (Endpoint{pod4, 9080}));
  ASSERT_TRUE(Connect(*node_, {pod6, 9080}, 0));
  ASSERT_TRUE(in6.Accept(&local, &original));
  EXPECT_EQ(original, (Endpoint{pod6, 9080}));

  // The proxy's own uid goes straight out, as do the excluded port and range.
  ASSERT_TRUE(Connect(*pod_, {"10.22.0.1", 80}, 1337));
  ASSERT_TRUE(app80.Accept(&local, &original));
  EXPECT_EQ(local, (Endpoint{"10.22.0.1", 80}));
  ASSERT_TRUE(Connect(*pod_, {"fd00:22::1", 80}, 1337));
  ASSERT_TRUE(app6.Accept(&local, &original));
  EXPECT_EQ(local, (Endpoint{"fd00:22::1", 80}));
  ASSERT_TRUE(Connect(*pod_, {"10.22.0.1", 8081}, 1000));
  ASSERT_TRUE(app8081.Accept(&local, &original));
  EXPECT_EQ(local, (Endpoint{"10.22.0.1", 8081}));
  ASSERT_TRUE(Connect(*pod_, {"10.22.0.254", 80}, 1000));
  ASSERT_TRUE(app80.Accept(&local, &original));
  EXPECT_EQ(local, (Endpoint{"10.22.0.254", 80}));

  // CHECK through the whole chain passes, then fails once a rule is deleted by hand.
  ProcessResult check = GoCni("check");
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  std::string listing = pod_->Exec("nft -a list chain inet tern outbound");
  size_t at = listing.find("tcp dport 8081");
  ASSERT_NE(at, std::string::npos) << listing;
  size_t handle = listing.find("# handle ", at);
  ASSERT_TRUE(nettest::Sh("ip netns exec " + pod_->name() + " nft delete rule inet tern outbound handle " +
                          listing.substr(handle + 9, listing.find('\n', handle) - handle - 9)));
  check = GoCni("check");
  EXPECT_NE(check.exit_code, 0);
  EXPECT_NE(check.err.find("capture check failed: table inet tern differs from the plan"), std::string::npos)
      << check.out << check.err;

  // DEL through the chain: the pod's ruleset is what it was before ADD.
  ProcessResult del = GoCni("del");
  EXPECT_EQ(del.exit_code, 0) << del.out << del.err;
  EXPECT_EQ(pod_->Exec("nft list ruleset"), before);
}

}  // namespace
}  // namespace tern
