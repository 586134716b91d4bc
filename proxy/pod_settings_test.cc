// Per-pod tuning from the downward API's annotations file: parsed as Kubernetes writes it, good
// values applied, bad ones reported and ignored.
#include "proxy/pod_settings.h"

#include <gtest/gtest.h>

namespace tern::proxy {
namespace {

TEST(PodSettings, TheDownwardApiFileAsKubernetesWritesIt) {
  std::vector<std::string> problems;
  auto a = ParseDownwardApiFile(
      "kubectl.kubernetes.io/default-container=\"app\"\n"
      "proxy.istio.io/config=\"concurrency: 4\\nholdApplicationUntilProxyStarts: true\\n\"\n"
      "quoted=\"say \\\"hi\\\" \\\\ \\x41\\u00e9\"\n"
      "broken line\n"
      "bad=\"unterminated\n"
      "short=\"\\x4\"\n",
      &problems);
  EXPECT_EQ(a.at("kubectl.kubernetes.io/default-container"), "app");
  EXPECT_EQ(a.at("proxy.istio.io/config"), "concurrency: 4\nholdApplicationUntilProxyStarts: true\n");
  EXPECT_EQ(a.at("quoted"), "say \"hi\" \\ A\xC3\xA9");
  EXPECT_EQ(problems, (std::vector<std::string>{"line 4: not key=\"value\"", "line 5: not key=\"value\"",
                                                "line 6: not key=\"value\""}));
  EXPECT_FALSE(a.count("short")) << "a truncated escape is refused, not read past";
}

TEST(PodSettings, GoodValuesApplyBadOnesAreReportedAndIgnored) {
  PodSettings s = SettingsFromAnnotations({{"proxy.istio.io/config", "concurrency: 4"}, {"sidecar.istio.io/logLevel", "warning"}});
  EXPECT_EQ(s.concurrency, 4);
  EXPECT_EQ(s.log_level, LogLevel::kWarn);
  EXPECT_TRUE(s.problems.empty());

  s = SettingsFromAnnotations({{"proxy.istio.io/config", "concurrency: [4"}, {"sidecar.istio.io/logLevel", "loud"}});
  EXPECT_FALSE(s.concurrency);
  EXPECT_FALSE(s.log_level);
  ASSERT_EQ(s.problems.size(), 2u);
  EXPECT_EQ(s.problems[0].rfind("proxy.istio.io/config: ", 0), 0u) << s.problems[0];
  EXPECT_EQ(s.problems[1], "sidecar.istio.io/logLevel: \"loud\" is not one of trace, debug, info, warning, error, critical, off");

  s = SettingsFromAnnotations({{"proxy.istio.io/config", "concurrency: 1000"}});
  EXPECT_FALSE(s.concurrency);
  EXPECT_EQ(s.problems, std::vector<std::string>{"proxy.istio.io/config: concurrency 1000 is out of range [0, 256]"});
  EXPECT_EQ(SettingsFromAnnotations({{"sidecar.istio.io/logLevel", "trace"}}).log_level, LogLevel::kDebug);
}

TEST(PodSettings, DrainDurationLogLevelAndTheRateLimitShorthand) {
  PodSettings s = SettingsFromAnnotations({{"proxy.istio.io/config", "drainDuration: 45s\nterminationDrainDuration: 1.5s\nlogLevel: warning"},
                                           {"tern.dev/rate-limit", "120/m"},
                                           {"tern.dev/rate-limit-burst", "10"}});
  EXPECT_TRUE(s.problems.empty()) << s.problems[0];
  EXPECT_EQ(s.drain, std::chrono::milliseconds(1500)) << "terminationDrainDuration wins";
  EXPECT_EQ(s.log_level, LogLevel::kWarn);
  ASSERT_TRUE(s.rate_limit);
  EXPECT_DOUBLE_EQ(s.rate_limit->per_second, 2);
  EXPECT_DOUBLE_EQ(s.rate_limit->burst, 10);
  EXPECT_EQ(SettingsFromAnnotations({{"proxy.istio.io/config", "drainDuration: 5s"}}).drain, std::chrono::milliseconds(5000));
  EXPECT_DOUBLE_EQ(SettingsFromAnnotations({{"tern.dev/rate-limit", "0.5/s"}}).rate_limit->burst, 1) << "at least one request";

  s = SettingsFromAnnotations({{"proxy.istio.io/config", "drainDuration: soon\nlogLevel: 3"},
                               {"tern.dev/rate-limit", "100/fortnight"},
                               {"sidecar.istio.io/logLevel", "info"}});
  EXPECT_FALSE(s.drain);
  EXPECT_FALSE(s.rate_limit);
  EXPECT_EQ(s.log_level, LogLevel::kInfo) << "the good annotation still applies";
  ASSERT_EQ(s.problems.size(), 3u);
  EXPECT_EQ(s.problems[0].rfind("proxy.istio.io/config: drainDuration: ", 0), 0u) << s.problems[0];
  EXPECT_EQ(s.problems[1], "proxy.istio.io/config: logLevel 3 is not one of trace, debug, info, warning, error, critical, off");
  EXPECT_EQ(s.problems[2], "tern.dev/rate-limit: \"100/fortnight\" is not <n>/s, <n>/m or <n>/h with n > 0");
  s = SettingsFromAnnotations({{"tern.dev/rate-limit", "5/s"}, {"tern.dev/rate-limit-burst", "-1"}});
  ASSERT_TRUE(s.rate_limit);
  EXPECT_DOUBLE_EQ(s.rate_limit->burst, 5) << "a bad burst keeps the default";
  EXPECT_EQ(s.problems.size(), 1u);
}

}  // namespace
}  // namespace tern::proxy
