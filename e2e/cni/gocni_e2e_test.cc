// tern-cni as containerd runs it. containerd's go-cni library (built here with Debian's Go)
// runs a conflist of the reference bridge + host-local plugins with tern-cni chained last,
// inside a "node" network namespace that holds the bridge and a fake Kubernetes API serving
// the pod. Then traffic proves the capture from the "pod" namespace: app connections land on
// the outbound listener with their original destination, inbound lands on 15006, the proxy's
// uid and every exclusion go straight out, for IPv4 and IPv6. CHECK notices a rule deleted by
// hand, and DEL leaves the pod's ruleset as it was.
#include <unistd.h>

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "cni-plugin/testing/cni_mode_pod.h"
#include "core/capture/testing/netns_traffic.h"
#include "core/capture/testing/sh.h"
#include "e2e/cni/local_node.h"

namespace tern {
namespace {

using nlohmann::json;
using nettest::Connect;
using nettest::Endpoint;
using nettest::Listener;
using testing_support::ProcessResult;

class GoCniE2e : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to create network namespaces";
    auto node = e2e::LocalNode::Create({.build_dir = TERN_BINARY_DIR, .source_dir = TERN_SOURCE_DIR});
    ASSERT_TRUE(node.ok()) << node.status().message();
    node_ = std::move(*node);
    // What the webhook writes in CNI mode, with one excluded port and range.
    node_->PutPod(cni::testing::CniModePod("my-app", "web",
                                           {{"traffic.sidecar.istio.io/excludeOutboundIPRanges", "10.22.0.254/32"},
                                            {"traffic.sidecar.istio.io/excludeOutboundPorts", "8081"}}));
  }
  ProcessResult GoCni(const std::string& op) { return node_->GoCni(op, "my-app", "web"); }

  std::unique_ptr<e2e::LocalNode> node_;
};

TEST_F(GoCniE2e, ContainerdsLibraryWiresAPodWhoseTrafficIsCaptured) {
  std::string before = node_->pod().Exec("nft list ruleset");
  ProcessResult add = GoCni("add");
  ASSERT_EQ(add.exit_code, 0) << add.out << add.err;
  json ips = json::parse(add.out)["ips"];
  std::string pod4, pod6;
  for (const auto& ip : ips) (ip.get<std::string>().find(':') == std::string::npos ? pod4 : pod6) = ip;
  ASSERT_FALSE(pod4.empty()) << add.out;
  ASSERT_FALSE(pod6.empty()) << add.out;
  EXPECT_NE(add.err.find("tern-cni: ADD pod my-app/web: capture installed"), std::string::npos) << add.err;
  EXPECT_GE(node_->api().requests(), 1);

  // A second address on the node side of the bridge, for the excluded range.
  ASSERT_TRUE(nettest::Sh("ip -n " + node_->node().name() + " addr add 10.22.0.254/32 dev cni-tern0"));
  Listener out4(node_->pod(), {"0.0.0.0", 15001}), out6(node_->pod(), {"::", 15001});
  Listener in4(node_->pod(), {"0.0.0.0", 15006}), in6(node_->pod(), {"::", 15006});
  Listener app80(node_->node(), {"0.0.0.0", 80}), app8081(node_->node(), {"0.0.0.0", 8081}), app6(node_->node(), {"::", 80});
  for (Listener* l : {&out4, &out6, &in4, &in6, &app80, &app8081, &app6}) ASSERT_TRUE(l->ok());
  Endpoint local, original;

  // An app's outbound connection reaches the sidecar's outbound listener, which can tell where
  // it was going.
  ASSERT_TRUE(Connect(node_->pod(), {"10.22.0.1", 80}, 1000));
  ASSERT_TRUE(out4.Accept(&local, &original));
  EXPECT_EQ(original, (Endpoint{"10.22.0.1", 80}));
  ASSERT_TRUE(Connect(node_->pod(), {"fd00:22::1", 80}, 1000));
  ASSERT_TRUE(out6.Accept(&local, &original));
  EXPECT_EQ(original, (Endpoint{"fd00:22::1", 80}));

  // Inbound to an app port reaches the inbound listener.
  ASSERT_TRUE(Connect(node_->node(), {pod4, 9080}, 0));
  ASSERT_TRUE(in4.Accept(&local, &original));
  EXPECT_EQ(original, (Endpoint{pod4, 9080}));
  ASSERT_TRUE(Connect(node_->node(), {pod6, 9080}, 0));
  ASSERT_TRUE(in6.Accept(&local, &original));
  EXPECT_EQ(original, (Endpoint{pod6, 9080}));

  // The proxy's own uid goes straight out, as do the excluded port and range.
  ASSERT_TRUE(Connect(node_->pod(), {"10.22.0.1", 80}, 1337));
  ASSERT_TRUE(app80.Accept(&local, &original));
  EXPECT_EQ(local, (Endpoint{"10.22.0.1", 80}));
  ASSERT_TRUE(Connect(node_->pod(), {"fd00:22::1", 80}, 1337));
  ASSERT_TRUE(app6.Accept(&local, &original));
  EXPECT_EQ(local, (Endpoint{"fd00:22::1", 80}));
  ASSERT_TRUE(Connect(node_->pod(), {"10.22.0.1", 8081}, 1000));
  ASSERT_TRUE(app8081.Accept(&local, &original));
  EXPECT_EQ(local, (Endpoint{"10.22.0.1", 8081}));
  ASSERT_TRUE(Connect(node_->pod(), {"10.22.0.254", 80}, 1000));
  ASSERT_TRUE(app80.Accept(&local, &original));
  EXPECT_EQ(local, (Endpoint{"10.22.0.254", 80}));

  // CHECK through the whole chain passes, then fails once a rule is deleted by hand.
  ProcessResult check = GoCni("check");
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  std::string listing = node_->pod().Exec("nft -a list chain inet tern outbound");
  size_t at = listing.find("tcp dport 8081");
  ASSERT_NE(at, std::string::npos) << listing;
  size_t handle = listing.find("# handle ", at);
  ASSERT_TRUE(nettest::Sh("ip netns exec " + node_->pod().name() + " nft delete rule inet tern outbound handle " +
                          listing.substr(handle + 9, listing.find('\n', handle) - handle - 9)));
  check = GoCni("check");
  EXPECT_NE(check.exit_code, 0);
  EXPECT_NE(check.err.find("capture check failed: table inet tern differs from the plan"), std::string::npos)
      << check.out << check.err;

  // DEL through the chain: the pod's ruleset is what it was before ADD.
  ProcessResult del = GoCni("del");
  EXPECT_EQ(del.exit_code, 0) << del.out << del.err;
  EXPECT_EQ(node_->pod().Exec("nft list ruleset"), before);
}

}  // namespace
}  // namespace tern
