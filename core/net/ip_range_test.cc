#include "core/net/ip_range.h"

#include <gtest/gtest.h>

namespace tern {
namespace {

TEST(IpRange, ParsesV4AndV6) {
  auto r = ParseIpRange("10.96.0.1/24");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->v6);
  EXPECT_EQ(r->prefix, 24);
  EXPECT_EQ(r->ToString(), "10.96.0.1/24");
  auto r6 = ParseIpRange("fd00::/8");
  ASSERT_TRUE(r6.ok());
  EXPECT_TRUE(r6->v6);
  EXPECT_EQ(r6->ToString(), "fd00::/8");
}

TEST(IpRange, RejectsBadPrefixAndAddress) {
  auto r = ParseIpRange("10.0.0.0/33");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("0..32"), std::string::npos) << r.status().message();
  EXPECT_FALSE(ParseIpRange("10.0.0.0").ok());
  EXPECT_FALSE(ParseIpRange("10.0.0.300/8").ok());
  EXPECT_FALSE(ParseIpRange("::1/129").ok());
  EXPECT_FALSE(ParseIpRange("10.0.0.0/").ok());
  EXPECT_FALSE(ParseIpRange("10.0.0.0/8x").ok());
}

TEST(IpRangeList, WildcardOnlyAloneAndWhereAllowed) {
  auto all = ParseIpRangeList("*", true);
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->all);
  EXPECT_FALSE(ParseIpRangeList("*", false).ok());
  EXPECT_FALSE(ParseIpRangeList("*,10.0.0.0/8", true).ok());
  auto two = ParseIpRangeList(" 10.0.0.0/8 , fd00::/8 ", false);
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(two->ranges.size(), 2u);
  auto none = ParseIpRangeList("", false);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->ranges.empty());
}

TEST(PortList, RangeAndSyntax) {
  auto p = ParsePortList("1,2,65535", false);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->ports, (std::vector<uint16_t>{1, 2, 65535}));
  auto bad = ParsePortList("80,70000", false);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "port 70000 is out of range 1-65535");
  EXPECT_FALSE(ParsePortList("0", false).ok());
  EXPECT_FALSE(ParsePortList("http", false).ok());
  EXPECT_FALSE(ParsePortList("-1", false).ok());
  EXPECT_TRUE(ParsePortList("*", true)->all);
}

}  // namespace
}  // namespace tern
