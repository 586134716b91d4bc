#include "core/kube/label_selector.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace tern {
namespace {

TEST(LabelSelector, MatchLabelsAndExpressions) {
  FieldErrors errors;
  auto sel = ParseLabelSelector(nlohmann::json::parse(R"({
    "matchLabels": {"app": "web"},
    "matchExpressions": [
      {"key": "tier", "operator": "In", "values": ["a", "b"]},
      {"key": "legacy", "operator": "DoesNotExist"}]})"),
                                "sel", errors);
  ASSERT_TRUE(errors.empty()) << errors.ToString();
  EXPECT_TRUE(sel.Matches({{"app", "web"}, {"tier", "a"}}));
  EXPECT_FALSE(sel.Matches({{"app", "web"}, {"tier", "c"}}));
  EXPECT_FALSE(sel.Matches({{"app", "web"}, {"tier", "a"}, {"legacy", ""}}));
  EXPECT_FALSE(sel.Matches({{"tier", "a"}}));
  EXPECT_TRUE(LabelSelector{}.Matches({}));
}

TEST(LabelSelector, ErrorsCarryPaths) {
  FieldErrors errors;
  ParseLabelSelector(nlohmann::json::parse(R"({"matchExpressions": [{"key": "k", "operator": "Near"},
                                                                   {"key": "k", "operator": "In"}]})"),
                     "neverInjectSelector[0]", errors);
  ASSERT_EQ(errors.all().size(), 2u);
  EXPECT_EQ(errors.all()[0].path, "neverInjectSelector[0].matchExpressions[0].operator");
  EXPECT_EQ(errors.all()[1].path, "neverInjectSelector[0].matchExpressions[1].values");
}

}  // namespace
}  // namespace tern
