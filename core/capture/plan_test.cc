// Golden rulesets: one base capture config and a case per flag or annotation that changes it.
// Each golden is what `tern-init --dry-run` prints and what the applier installs; the netns test
// applies every one of them to a real kernel. TERN_UPDATE_GOLDEN=1 rewrites them.
#include "core/capture/plan.h"

#include <gtest/gtest.h>

#include <functional>
#include <sstream>

#include "core/base/files.h"
#include "core/capture/nft_render.h"
#include "core/capture/plan_cases.h"

namespace tern::capture {
namespace {

class PlanGolden : public ::testing::TestWithParam<PlanCase> {};

TEST_P(PlanGolden, MatchesGoldenFile) {
  const PlanCase& c = GetParam();
  std::string got = RenderTable(BuildPlan(c.config()));
  std::string path = std::string(TERN_SOURCE_DIR) + "/core/capture/testdata/" + c.name + ".golden";
  if (std::getenv("TERN_UPDATE_GOLDEN")) {
    ASSERT_TRUE(WriteFileAtomically(path, got).ok());
  }
  auto want = ReadFile(path);
  ASSERT_TRUE(want.ok()) << want.status().message();
  EXPECT_EQ(got, *want);
}

INSTANTIATE_TEST_SUITE_P(Cases, PlanGolden, ::testing::ValuesIn(PlanCases()),
                         [](const auto& param_info) { return param_info.param.name; });

// Order matters in netfilter: check the semantic invariants directly, not only via goldens.
size_t IndexOf(const std::string& text, const std::string& needle) {
  size_t at = text.find(needle);
  EXPECT_NE(at, std::string::npos) << needle << " in\n" << text;
  return at;
}

TEST(Plan, ProxyTrafficReturnsBeforeAnyRedirectToTheOutboundListener) {
  std::string t = RenderTable(BuildPlan(CaptureConfig{}));
  size_t uid_return = IndexOf(t, "meta skuid 1337 return");
  size_t gid_return = IndexOf(t, "meta skgid 1337 return");
  size_t redirect = IndexOf(t, "meta l4proto tcp redirect to :15001");
  EXPECT_LT(uid_return, redirect);
  EXPECT_LT(gid_return, redirect);
}

TEST(Plan, ProxyPortsAreNeverCapturedInbound) {
  CaptureConfig c;
  c.exclude_inbound_ports.ports = {9000};
  std::string t = RenderTable(BuildPlan(c));
  size_t excluded = IndexOf(t, "tcp dport { 9000, 15000, 15020, 15021, 15090 } return");
  EXPECT_LT(excluded, IndexOf(t, "redirect to :15006 comment \"all other inbound TCP"));
}

TEST(Plan, NoneModeInstallsNothing) {
  CaptureConfig c;
  c.mode = InterceptionMode::kNone;
  EXPECT_TRUE(BuildPlan(c).chains.empty());
}

TEST(Plan, OverlappingRangesBecomeSeparateRulesAndHostBitsAreCleared) {
  CaptureConfig c;
  c.exclude_outbound_ranges = *ParseIpRangeList("10.96.0.2/24,10.96.0.3/24,10.0.0.0/8", false);
  std::string t = RenderTable(BuildPlan(c));
  EXPECT_NE(t.find("ip daddr 10.96.0.0/24 return"), std::string::npos) << t;
  EXPECT_EQ(t.find("10.96.0.2"), std::string::npos) << "duplicates after masking are dropped";
  EXPECT_NE(t.find("ip daddr 10.0.0.0/8 return"), std::string::npos);
}

TEST(CaptureText, ErrorsNameTheField) {
  CaptureText text;
  text.mode = "MAGIC";
  text.exclude_inbound_ports = "70000";
  text.exclude_outbound_ranges = "10.0.0.0/33";
  text.exclude_interfaces = "eth0,bad/name";
  FieldErrors errors;
  ParseCaptureText(text, {"-m", "-b", "-d", "-q", "-o", "-i", "-x", "-c", "-k"}, errors);
  EXPECT_EQ(errors.ToString(),
            "-m: \"MAGIC\" is not one of REDIRECT, TPROXY, NONE; -d: port 70000 is out of range 1-65535; "
            "-x: \"10.0.0.0/33\" is not a CIDR range (prefix length must be 0..32); "
            "-c: \"bad/name\" is not an interface name");
}

}  // namespace
}  // namespace tern::capture
