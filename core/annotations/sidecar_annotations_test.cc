#include "core/annotations/sidecar_annotations.h"

#include <gtest/gtest.h>

#include "core/annotations/keys.h"

namespace tern {
namespace {

TEST(SidecarAnnotations, ValidValuesParse) {
  FieldErrors errors;
  auto s = ParseSidecarAnnotations({{keys::kProxyCpu, "4000m"},
                                    {keys::kExcludeInboundPorts, "4,5,6"},
                                    {keys::kIncludeOutboundIPRanges, "127.0.0.1/24,10.96.0.1/24"},
                                    {keys::kInterceptionMode, "TPROXY"},
                                    {keys::kNativeSidecar, "false"},
                                    {keys::kStatusPort, "123"},
                                    {keys::kProxyConfig, "concurrency: 2\nproxyMetadata:\n  FOO: bar\n"}},
                                   errors);
  ASSERT_TRUE(errors.empty()) << errors.ToString();
  EXPECT_EQ(*s.proxy_cpu, "4000m");
  EXPECT_EQ(*s.capture.exclude_inbound_ports, "4,5,6");
  EXPECT_EQ(*s.capture.interception_mode, InterceptionMode::kTproxy);
  EXPECT_FALSE(*s.native_sidecar);
  EXPECT_EQ(*s.status_port, 123);
  EXPECT_EQ(*s.proxy_config->concurrency, 2);
  EXPECT_EQ(s.proxy_config->proxy_metadata.at("FOO"), "bar");
}

// The four bad values: each error names the annotation and the value.
TEST(SidecarAnnotations, BadValuesNameAnnotationAndValue) {
  struct Case {
    const char* key;
    const char* value;
    const char* expect;
  } cases[] = {
      {keys::kExcludeInboundPorts, "70000", "port 70000 is out of range"},
      {keys::kExcludeOutboundIPRanges, "10.0.0.0/33", "prefix length must be 0..32"},
      {keys::kInterceptionMode, "MAGIC", "must be one of REDIRECT, TPROXY, NONE"},
      {keys::kProxyMemory, "abc", "not a resource quantity"},
      {keys::kRewriteAppHttpProbers, "maybe", "must be true or false"},
      {keys::kStatusPort, "99999", "between 0 and 65535"},
      {keys::kProxyConfig, "concurency: 2", "unknown ProxyConfig field"},
      {keys::kUserVolume, "[1]", "JSON object"},
  };
  for (const auto& c : cases) {
    FieldErrors errors;
    ParseSidecarAnnotations({{c.key, c.value}}, errors);
    ASSERT_EQ(errors.all().size(), 1u) << c.key;
    EXPECT_EQ(errors.all()[0].path, AnnotationPath(c.key));
    const std::string& msg = errors.all()[0].message;
    EXPECT_NE(msg.find(std::string("\"") + c.value + "\""), std::string::npos) << msg;
    EXPECT_NE(msg.find(c.expect), std::string::npos) << msg;
  }
}

TEST(SidecarAnnotations, UnrelatedAnnotationsIgnored) {
  FieldErrors errors;
  ParseSidecarAnnotations({{"example.com/whatever", "70000"}}, errors);
  EXPECT_TRUE(errors.empty());
}

}  // namespace
}  // namespace tern
