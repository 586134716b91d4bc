#include "core/yaml/yaml_json.h"

#include <gtest/gtest.h>

#include <cmath>

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

TEST(YamlJson, RejectsBytesThatAreNotUtf8) {
  auto doc = ParseYaml("a: ok\nb: caf\xc3\xa9\nc: \x9d\n");
  ASSERT_FALSE(doc.ok());
  EXPECT_EQ(doc.status().message(), "invalid YAML at line 3, column 4: not UTF-8 printable text");
  EXPECT_FALSE(ParseYamlDocuments("x: \xc0\xaf\n").ok()) << "overlong encoding";
  EXPECT_FALSE(ParseYamlDocuments("x: \xed\xa0\x80\n").ok()) << "surrogate";
  EXPECT_TRUE(ParseYaml("x: \xf0\x9f\x90\xa6\n").ok()) << "a 4-byte character";
  EXPECT_FALSE(ParseYaml(std::string("x: a\x01\x00b\n", 8)).ok()) << "control characters";
}

// Lines "<c>: &<c> [*<c-1> x10]" for c in (from, to]: each level multiplies the previous tenfold.
std::string TenfoldAliases(char from, char to) {
  std::string out;
  for (char c = static_cast<char>(from + 1); c <= to; ++c) {
    std::string prev = std::string("*") + static_cast<char>(c - 1);
    out += std::string(1, c) + ": &" + c + " [" + prev;
    for (int i = 1; i < 10; ++i) out += ", " + prev;
    out += "]\n";
  }
  return out;
}

TEST(YamlJson, AliasedLongStringsAreCountedEachTimeTheyAreUsed) {
  // 10^6 uses of a 4 KB string would be 4 GB: refused long before.
  std::string doc = "s: &s \"" + std::string(4000, 'x') + "\"\na: &a [*s, *s, *s, *s, *s, *s, *s, *s, *s, *s]\n" +
                    TenfoldAliases('a', 'f');
  auto parsed = ParseYaml(doc);
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(parsed.status().message().find("16 MiB"), std::string::npos) << parsed.status().message();
}

TEST(YamlJson, AliasedLongKeysAreCountedToo) {
  std::string doc = "k: &k \"" + std::string(4000, 'k') + "\"\na: &a {*k : 1}\n" + TenfoldAliases('a', 'g');
  auto parsed = ParseYaml(doc);
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(parsed.status().message().find("16 MiB"), std::string::npos) << parsed.status().message();
}

TEST(YamlJson, SelfReferentialAliasAndDeepNestingAreRefused) {
  auto cyclic = ParseYaml("a: &a [*a]\n");
  ASSERT_FALSE(cyclic.ok());
  EXPECT_NE(cyclic.status().message().find("refers to itself"), std::string::npos) << cyclic.status().message();
  EXPECT_FALSE(ParseYamlDocuments(std::string(300, '[') + std::string(300, ']')).ok());
  EXPECT_TRUE(ParseYaml(std::string(50, '[') + std::string(50, ']')).ok());
}

TEST(YamlJson, HugeNumbersSaturateInsteadOfThrowing) {
  auto doc = ParseYaml("[2E2222, 99999999999999999999999]");
  ASSERT_TRUE(doc.ok()) << doc.status().message();
  EXPECT_TRUE(std::isinf((*doc)[0].get<double>()));
  EXPECT_DOUBLE_EQ((*doc)[1].get<double>(), 1e23);
}

TEST(YamlJson, AliasBombIsRefused) {
  auto doc = ParseYaml("a: &a [x, x, x, x, x, x, x, x, x, x]\n" + TenfoldAliases('a', 'j'));
  ASSERT_FALSE(doc.ok());
  EXPECT_NE(doc.status().message().find("aliases are expanded"), std::string::npos) << doc.status().message();
}

TEST(YamlJson, RoundTripKeepsTypesOfAmbiguousStrings) {
  nlohmann::json v = {{"port", "15020"}, {"scrape", "true"}, {"empty", ""}, {"n", 80}, {"b", false},
                      {"multi", "line one\nline two\n"}, {"unterminated", "a\nb"}, {"blank-tail", "a\n\n"}, {"lead", " x\ny\n"}, {"list", {"a", "~", "null"}}, {"obj", nlohmann::json::object()}};
  auto back = ParseYaml(ToYaml(v));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(*back, v) << ToYaml(v);
}

}  // namespace
}  // namespace tern
