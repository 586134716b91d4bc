#include "core/yaml/yaml_json.h"

#include <gtest/gtest.h>

namespace tern {
namespace {

TEST(YamlJson, PlainScalarsResolveByCoreSchemaQuotedStayStrings) {
  auto doc = ParseYaml("a: 1\nb: \"1\"\nc: true\nd: 'false'\ne: ~\nf: 1.5\ng: hello\nh: 0x1F\n");
  ASSERT_TRUE(doc.ok()) << doc.status().message();
  EXPECT_EQ((*doc)["a"], 1);
  EXPECT_EQ((*doc)["b"], "1");
  EXPECT_EQ((*doc)["c"], true);
  EXPECT_EQ((*doc)["d"], "false");
  EXPECT_TRUE((*doc)["e"].is_null());
  EXPECT_DOUBLE_EQ((*doc)["f"].get<double>(), 1.5);
  EXPECT_EQ((*doc)["g"], "hello");
  EXPECT_EQ((*doc)["h"], 31);
}

TEST(YamlJson, MultiDocumentStreamDropsEmptyDocuments) {
  auto docs = ParseYamlDocuments("---\na: 1\n---\n---\nb: [x, y]\n...\n");
  ASSERT_TRUE(docs.ok());
  ASSERT_EQ(docs->size(), 2u);
  EXPECT_EQ((*docs)[1]["b"][1], "y");
}

TEST(YamlJson, ErrorNamesLineAndColumn) {
  auto doc = ParseYaml("a: 1\nb: [unclosed\n");
  ASSERT_FALSE(doc.ok());
  EXPECT_NE(doc.status().message().find("line "), std::string::npos) << doc.status().message();
}

TEST(YamlJson, RoundTripKeepsTypesOfAmbiguousStrings) {
  nlohmann::json v = {{"port", "15020"}, {"scrape", "true"}, {"empty", ""}, {"n", 80}, {"b", false},
                      {"multi", "line one\nline two\n"}, {"list", {"a", "~", "null"}}, {"obj", nlohmann::json::object()}};
  auto back = ParseYaml(ToYaml(v));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(*back, v) << ToYaml(v);
}

}  // namespace
}  // namespace tern
