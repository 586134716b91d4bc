// Capture on a real kernel: every golden ruleset applies in a network namespace made by the
// test, applying twice changes nothing, removal leaves nothing, a failed transaction leaves the
// previous state; then tern-init itself, run in a "pod" namespace wired to a "peer" namespace by
// a veth pair, is proved by traffic: what must reach the proxy lands on its listeners with the
// intended original destination, and what must not goes straight out. IPv4 and IPv6.
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/base/files.h"
#include "core/capture/applier.h"
#include "core/capture/nft_render.h"
#include "core/capture/plan.h"
#include "core/capture/plan_cases.h"
#include "core/capture/testing/netns_traffic.h"
#include "core/capture/testing/sh.h"
#include "core/testing/subprocess.h"

namespace tern::capture {
namespace {

using namespace tern::nettest;  // NOLINT(google-build-using-namespace): test helpers
using namespace std::chrono_literals;

class CaptureKernel : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to create network namespaces";
  }
};

TEST_F(CaptureKernel, EveryGoldenRulesetAppliesReplacesAndRemovesCleanly) {
  Netns ns("golden");
  auto applier = MakeKernelApplier(ns.path());
  for (const auto& c : PlanCases()) {
    SCOPED_TRACE(c.name);
    Ruleset rs = BuildPlan(c.config());
    ASSERT_TRUE(applier->Apply(rs).ok()) << applier->Apply(rs).message();
    auto first = applier->List(rs.table);
    ASSERT_TRUE(first.ok());
    EXPECT_NE(first->find("chain outbound"), std::string::npos) << *first;
    ASSERT_TRUE(applier->Apply(rs).ok());
    EXPECT_EQ(*applier->List(rs.table), *first) << "applying twice must replace, not duplicate";
    Status verified = applier->Verify(rs);
    EXPECT_TRUE(verified.ok()) << verified.message();
    if (rs.tproxy_routing) {
      EXPECT_NE(ns.Exec("ip rule show").find("fwmark 0x539 lookup 133"), std::string::npos);
      EXPECT_NE(ns.Exec("ip route show table 133").find("local default dev lo"), std::string::npos);
      EXPECT_NE(ns.Exec("ip -6 route show table 133").find("local default dev lo"), std::string::npos);
    }
    ASSERT_TRUE(applier->Remove(rs).ok());
    EXPECT_EQ(*applier->List(rs.table), "");
    EXPECT_EQ(ns.Exec("nft list ruleset"), "") << "removal leaves the namespace as it was";
    EXPECT_EQ(ns.Exec("ip rule show").find("lookup 133"), std::string::npos);
    EXPECT_TRUE(applier->Remove(rs).ok()) << "removing twice is not an error";
  }
}

// The kernel is fed JSON (no NSS lookups for uids); goldens and --dry-run are text. Both must
// mean the same ruleset: what the kernel lists after each is identical, for every golden case.
TEST_F(CaptureKernel, JsonAndTextRenderingsProgramTheSameRuleset) {
  Netns via_json("json"), via_text("text");
  auto applier = MakeKernelApplier(via_json.path());
  char tmpl[] = "/tmp/tern-nft-XXXXXX";
  int fd = mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  close(fd);
  for (const auto& c : PlanCases()) {
    SCOPED_TRACE(c.name);
    Ruleset rs = BuildPlan(c.config());
    ASSERT_TRUE(applier->Apply(rs).ok());
    ASSERT_TRUE(WriteFileAtomically(tmpl, RenderReplaceTransaction(rs)).ok());
    ASSERT_TRUE(Sh("ip netns exec " + via_text.name() + " nft -f " + tmpl));
    std::string from_json = via_json.Exec("nft list table inet tern");
    EXPECT_EQ(from_json, via_text.Exec("nft list table inet tern"));
    EXPECT_NE(from_json.find("chain outbound"), std::string::npos) << from_json;
  }
  unlink(tmpl);
}

TEST_F(CaptureKernel, AFailedTransactionLeavesThePreviousStateWhole) {
  Netns ns("fail");
  auto applier = MakeKernelApplier(ns.path());
  Ruleset good = BuildPlan(CaptureConfig{});
  ASSERT_TRUE(applier->Apply(good).ok());
  std::string before = *applier->List(good.table);

  CaptureConfig tproxy;
  tproxy.mode = InterceptionMode::kTproxy;
  Ruleset bad = BuildPlan(tproxy);
  bad.chains[0].rules.push_back({{Match{Match::Field::kTcpDport, false, {"80"}}}, Verdict{Verdict::Kind::kJump, "nowhere"}, ""});
  Status s = applier->Apply(bad);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("nftables refused the ruleset"), std::string::npos) << s.message();
  EXPECT_EQ(*applier->List(good.table), before) << "the old table is untouched";
  EXPECT_EQ(ns.Exec("ip rule show").find("lookup 133"), std::string::npos) << "TPROXY routing rolled back";

  Status missing = MakeKernelApplier("/var/run/netns/does-not-exist")->Apply(good);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.message().find("does-not-exist"), std::string::npos);
}

TEST_F(CaptureKernel, VerifyNamesTheRuleThatWasAlteredOrRemoved) {
  Netns ns("verify");
  auto applier = MakeKernelApplier(ns.path());
  CaptureConfig config;
  config.mode = InterceptionMode::kTproxy;
  config.exclude_outbound_ports.ports = {8081};
  Ruleset rs = BuildPlan(config);
  ASSERT_TRUE(applier->Apply(rs).ok());
  ASSERT_TRUE(applier->Verify(rs).ok()) << applier->Verify(rs).message();

  // Delete one rule by hand, as an operator (or another agent) might.
  std::string listing = ns.Exec("nft -a list chain inet tern outbound");
  size_t at = listing.find("tcp dport 8081");
  ASSERT_NE(at, std::string::npos) << listing;
  size_t handle = listing.find("# handle ", at);
  std::string id = listing.substr(handle + 9, listing.find('\n', handle) - handle - 9);
  Sh("ip netns exec " + ns.name() + " nft delete rule inet tern outbound handle " + id);
  Status s = applier->Verify(rs);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("table inet tern differs from the plan at line"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("8081"), std::string::npos) << s.message();

  ASSERT_TRUE(applier->Apply(rs).ok());
  ASSERT_TRUE(applier->Verify(rs).ok());
  Sh("ip -n " + ns.name() + " -6 rule del fwmark 1337 lookup 133");
  s = applier->Verify(rs);
  EXPECT_EQ(s.message(), "IPv6 policy rule \"fwmark 1337 lookup 133\" is missing");

  ASSERT_TRUE(applier->Remove(rs).ok());
  EXPECT_EQ(applier->Verify(rs).message(), "table inet tern is missing");
}

// ---- Traffic through tern-init's capture ----

class TernInitTraffic : public CaptureKernel {
 protected:
  void SetUp() override {
    CaptureKernel::SetUp();
    if (IsSkipped()) return;
    net_ = std::make_unique<PodAndPeer>();
    ASSERT_EQ(net_->error(), "");
    pod_ = &net_->pod;
    peer_ = &net_->peer;
  }
  void Init(const std::string& flags) {
    Sh("ip netns exec " + pod_->name() + " " + std::string(TERN_BINARY_DIR) + "/init/tern-init " + flags);
  }
  std::unique_ptr<PodAndPeer> net_;
  Netns* pod_ = nullptr;
  Netns* peer_ = nullptr;
};

TEST_F(TernInitTraffic, RedirectModeCapturesWhatItMustAndNothingElse) {
  // The flags the webhook injects, plus one excluded outbound port and range.
  Init("-p 15001 -z 15006 -u 1337 -g 1337 -m REDIRECT -i '*' -x 10.200.0.3/32 -b '*' -d 15090,15021,15020 -o 8081");
  Listener out4(*pod_, {"0.0.0.0", 15001}), out6(*pod_, {"::", 15001});
  Listener in4(*pod_, {"0.0.0.0", 15006}), in6(*pod_, {"::", 15006});
  Listener health(*pod_, {"0.0.0.0", 15021});
  Listener app80(*peer_, {"0.0.0.0", 80}), app8081(*peer_, {"0.0.0.0", 8081}), app6(*peer_, {"::", 80});
  for (Listener* l : {&out4, &out6, &in4, &in6, &health, &app80, &app8081, &app6}) ASSERT_TRUE(l->ok());
  Endpoint local, original;

  // An app's outbound call lands on the outbound listener, knowing where it was going.
  ASSERT_TRUE(Connect(*pod_, {"10.200.0.2", 80}, 1000));
  ASSERT_TRUE(out4.Accept(&local, &original));
  EXPECT_EQ(original, (Endpoint{"10.200.0.2", 80}));
  ASSERT_TRUE(Connect(*pod_, {"fd00:200::2", 80}, 1000));
  ASSERT_TRUE(out6.Accept(&local, &original));
  EXPECT_EQ(original, (Endpoint{"fd00:200::2", 80}));

  // The proxy's own uid goes straight out: no loop.
  ASSERT_TRUE(Connect(*pod_, {"10.200.0.2", 80}, 1337));
  ASSERT_TRUE(app80.Accept(&local, &original));
  EXPECT_EQ(local, (Endpoint{"10.200.0.2", 80}));
  ASSERT_TRUE(Connect(*pod_, {"fd00:200::2", 80}, 1337));
  ASSERT_TRUE(app6.Accept(&local, &original));

  // Excluded port and excluded range go straight out.
  ASSERT_TRUE(Connect(*pod_, {"10.200.0.2", 8081}, 1000));
  ASSERT_TRUE(app8081.Accept(&local, &original));
  ASSERT_TRUE(Connect(*pod_, {"10.200.0.3", 80}, 1000));
  ASSERT_TRUE(app80.Accept(&local, &original));
  EXPECT_EQ(local, (Endpoint{"10.200.0.3", 80}));

  // Inbound to an app port lands on the inbound listener; the proxy's health port does not.
  ASSERT_TRUE(Connect(*peer_, {"10.200.0.1", 9080}, 0));
  ASSERT_TRUE(in4.Accept(&local, &original));
  EXPECT_EQ(original, (Endpoint{"10.200.0.1", 9080}));
  ASSERT_TRUE(Connect(*peer_, {"fd00:200::1", 9080}, 0));
  ASSERT_TRUE(in6.Accept(&local, &original));
  EXPECT_EQ(original, (Endpoint{"fd00:200::1", 9080}));
  ASSERT_TRUE(Connect(*peer_, {"10.200.0.1", 15021}, 0));
  ASSERT_TRUE(health.Accept(&local, &original));
  EXPECT_EQ(local, (Endpoint{"10.200.0.1", 15021}));

  // Cleanup leaves the namespace's ruleset as it was.
  Init("--cleanup");
  EXPECT_EQ(pod_->Exec("nft list ruleset"), "");
}

TEST_F(TernInitTraffic, TproxyModeDeliversInboundToATransparentListener) {
  Init("-p 15001 -z 15006 -u 1337 -g 1337 -m TPROXY -i '*' -x '' -b '*' -d 15090,15021,15020");
  Listener in4(*pod_, {"0.0.0.0", 15006}, true), in6(*pod_, {"::", 15006}, true);
  Listener out4(*pod_, {"0.0.0.0", 15001});
  Listener health(*pod_, {"0.0.0.0", 15021});
  for (Listener* l : {&in4, &in6, &out4, &health}) ASSERT_TRUE(l->ok());
  Endpoint local, original;

  // With TPROXY the connection keeps its destination: the accepted socket's own address is it.
  ASSERT_TRUE(Connect(*peer_, {"10.200.0.1", 9080}, 0));
  ASSERT_TRUE(in4.Accept(&local, &original));
  EXPECT_EQ(local, (Endpoint{"10.200.0.1", 9080}));
  ASSERT_TRUE(Connect(*peer_, {"fd00:200::1", 9080}, 0));
  ASSERT_TRUE(in6.Accept(&local, &original));
  EXPECT_EQ(local, (Endpoint{"fd00:200::1", 9080}));
  // The proxy's own ports are not diverted; outbound still goes to 15001.
  ASSERT_TRUE(Connect(*peer_, {"10.200.0.1", 15021}, 0));
  ASSERT_TRUE(health.Accept(&local, &original));
  ASSERT_TRUE(Connect(*pod_, {"10.200.0.2", 80}, 1000));
  ASSERT_TRUE(out4.Accept(&local, &original));
  EXPECT_EQ(original, (Endpoint{"10.200.0.2", 80}));

  Init("-m TPROXY --cleanup");
  EXPECT_EQ(pod_->Exec("nft list ruleset"), "");
  EXPECT_EQ(pod_->Exec("ip rule show").find("lookup 133"), std::string::npos);
}

TEST_F(TernInitTraffic, RunValidationProvesCaptureAndFailsWithoutIt) {
  std::string flags = " -p 15001 -z 15006 -u 1337 -g 1337 -m REDIRECT -i '*' -x '' -b '*' -d 15090,15021,15020";
  Init(flags);
  std::string tern_init = std::string(TERN_BINARY_DIR) + "/init/tern-init";
  // As the CNI-mode init step runs it: unprivileged, uid 1338.
  std::string as_app = "setpriv --reuid 1338 --regid 1338 --clear-groups " + tern_init;
  int rc = -1;
  std::string out = pod_->Exec(as_app + flags + " --run-validation --validation-timeout 3000", &rc);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("traffic capture validated"), std::string::npos) << out;

  out = pod_->Exec("setpriv --reuid 1337 --regid 1337 --clear-groups " + tern_init + flags + " --run-validation", &rc);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("must run as a uid other than the proxy's"), std::string::npos) << out;

  Init("--cleanup");
  out = pod_->Exec(as_app + flags + " --run-validation --validation-timeout 1000", &rc);
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(out.find("traffic capture is not in place: a connection to 192.0.2.1:15002 did not reach"),
            std::string::npos)
      << out;
}

TEST_F(TernInitTraffic, BadFlagsInstallNothing) {
  int rc = 0;
  std::string out = pod_->Exec(std::string(TERN_BINARY_DIR) + "/init/tern-init -m REDIRECT -d 70000", &rc);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("-d/--istio-local-exclude-ports: port 70000 is out of range"), std::string::npos) << out;
  EXPECT_EQ(pod_->Exec("nft list ruleset"), "");
}

// The init container killed wherever it is (the node under memory pressure, the pod deleted):
// what it leaves is nothing or the whole capture, never part of it; the restarted init container
// installs the whole capture, and --cleanup after a kill leaves the namespace as it was.
TEST_F(TernInitTraffic, KilledAnywhereItLeavesNothingOrTheWholeCaptureAndARerunCompletesIt) {
  const std::string flags = "-p 15001 -z 15006 -u 1337 -g 1337 -m TPROXY -i '*' -b '*' -d 15090,15021,15020";
  const std::vector<std::string> argv = {"/usr/sbin/ip", "netns", "exec", pod_->name(), std::string(TERN_BINARY_DIR) + "/init/tern-init",
                                         "-p", "15001", "-z", "15006", "-u", "1337", "-g", "1337", "-m", "TPROXY",
                                         "-i", "*", "-b", "*", "-d", "15090,15021,15020"};
  // The routes tern-init may add, less the veth's link-local address, which comes when the
  // kernel's duplicate address detection ends, whatever the test does.
  auto routes = [&] { return pod_->Exec("ip route show table all | grep -v 'local fe80::'"); };
  const std::string rules_before = pod_->Exec("ip rule show"), routes_before = routes();
  auto start = std::chrono::steady_clock::now();
  Init(flags);
  auto takes = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  const std::string whole = pod_->Exec("nft list ruleset"), whole_rules = pod_->Exec("ip rule show");
  ASSERT_NE(whole.find("tproxy"), std::string::npos) << whole;
  Init("--cleanup " + flags);
  ASSERT_EQ(pod_->Exec("nft list ruleset"), "");
  const std::string log = std::string(::testing::TempDir()) + "/tern-init-killed.log";
  int killed = 0;
  for (auto at = 0ms; at <= takes + 10ms; at += std::max(1ms, takes / 12)) {
    pid_t pid = tern::testing_support::Spawn(argv, {{"PATH", "/usr/sbin:/usr/bin:/sbin:/bin"}}, log);
    ASSERT_GT(pid, 0);
    std::this_thread::sleep_for(at);
    killed += kill(pid, SIGKILL) == 0 && tern::testing_support::WaitExit(pid, 5s) == 128 + SIGKILL;
    tern::testing_support::WaitExit(pid, 5s);
    std::string left = pod_->Exec("nft list ruleset");
    EXPECT_TRUE(left.empty() || left == whole) << "killed at " << at.count() << " ms, part of a ruleset left:\n" << left;
    if (at.count() % 2) {  // the init container restarts
      Init(flags);
      EXPECT_EQ(pod_->Exec("nft list ruleset"), whole) << "rerun after a kill at " << at.count() << " ms";
      EXPECT_EQ(pod_->Exec("ip rule show"), whole_rules) << "rerun after a kill at " << at.count() << " ms";
    }
    Init("--cleanup " + flags);
    EXPECT_EQ(pod_->Exec("nft list ruleset"), "") << "killed at " << at.count() << " ms";
    EXPECT_EQ(pod_->Exec("ip rule show"), rules_before) << "killed at " << at.count() << " ms";
    EXPECT_EQ(routes(), routes_before) << "killed at " << at.count() << " ms";
  }
  EXPECT_GT(killed, 2) << "the kills landed inside the run";
}

}  // namespace
}  // namespace tern::capture
