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

}  // namespace
}  // namespace tern::proxy
