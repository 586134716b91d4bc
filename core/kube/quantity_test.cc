#include "core/kube/quantity.h"

#include <gtest/gtest.h>

namespace tern {
namespace {

TEST(Quantity, ParsesKubernetesForms) {
  EXPECT_DOUBLE_EQ(*ParseQuantity("100m"), 0.1);
  EXPECT_DOUBLE_EQ(*ParseQuantity("4000m"), 4.0);
  EXPECT_DOUBLE_EQ(*ParseQuantity("2"), 2.0);
  EXPECT_DOUBLE_EQ(*ParseQuantity("128Mi"), 128.0 * 1024 * 1024);
  EXPECT_DOUBLE_EQ(*ParseQuantity("1G"), 1e9);
  EXPECT_DOUBLE_EQ(*ParseQuantity("1.5"), 1.5);
  EXPECT_DOUBLE_EQ(*ParseQuantity("2e3"), 2000.0);
  EXPECT_DOUBLE_EQ(*ParseQuantity(".5"), 0.5);
}

TEST(Quantity, RejectsGarbage) {
  for (const char* bad : {"abc", "", "1x", "Mi", "1.2.3", "1e", "10 m", "1mm"}) {
    auto q = ParseQuantity(bad);
    EXPECT_FALSE(q.ok()) << bad;
  }
  EXPECT_NE(ParseQuantity("abc").status().message().find("\"abc\""), std::string::npos);
  EXPECT_FALSE(ParseQuantity("1" + std::string(400, '0')).ok()) << "overflow is an error, not a crash";
  EXPECT_FALSE(ParseQuantity("1e99999").ok());
}

}  // namespace
}  // namespace tern
