#include "core/metrics/registry.h"

#include <gtest/gtest.h>

namespace tern {
namespace {

TEST(Registry, ExposesCountersAndHistogramsInTextFormat) {
  Registry r;
  auto& c = r.AddCounter("things_total", "Things.", {"outcome"});
  c.With({"ok"}).Inc();
  c.With({"ok"}).Inc(2);
  c.With({"bad \"x\""}).Inc();
  auto& h = r.AddHistogram("latency_seconds", "Latency.", {}, {0.001, 0.01});
  h.With({}).Observe(0.0005);
  h.With({}).Observe(0.005);
  h.With({}).Observe(5);
  std::string text = r.Expose();
  EXPECT_NE(text.find("# TYPE things_total counter"), std::string::npos);
  EXPECT_NE(text.find("things_total{outcome=\"ok\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("things_total{outcome=\"bad \\\"x\\\"\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("latency_seconds_bucket{le=\"0.001\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("latency_seconds_bucket{le=\"0.01\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("latency_seconds_bucket{le=\"+Inf\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("latency_seconds_count 3\n"), std::string::npos) << text;
}

}  // namespace
}  // namespace tern
