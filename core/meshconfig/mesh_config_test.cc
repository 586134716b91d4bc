#include "core/meshconfig/mesh_config.h"

#include <gtest/gtest.h>

#include "core/base/files.h"

namespace tern {
namespace {

TEST(MeshConfig, EmptyDocumentGivesDefaults) {
  auto mc = ParseMeshConfig("");
  ASSERT_TRUE(mc.ok()) << mc.status().message();
  EXPECT_EQ(mc->revision, "default");
  EXPECT_TRUE(mc->injection.native_sidecars);
  EXPECT_EQ(mc->injection.resources.limits.at("memory"), "1Gi");
  EXPECT_EQ(mc->capture.interception_mode, InterceptionMode::kRedirect);
}

TEST(MeshConfig, ShippedConfigMapParses) {
  // The ConfigMap in manifests/base/ must always be a valid mesh config.
  auto text = ReadFile(std::string(TERN_SOURCE_DIR) + "/manifests/base/configmap-mesh.yaml");
  ASSERT_TRUE(text.ok());
  auto marker = text->find("mesh.yaml: |");
  ASSERT_NE(marker, std::string::npos);
  std::string body;
  size_t pos = text->find('\n', marker) + 1;
  while (pos < text->size()) {
    size_t end = text->find('\n', pos);
    if (end == std::string::npos) end = text->size();
    std::string line = text->substr(pos, end - pos);
    if (!line.empty() && line.rfind("    ", 0) != 0) break;
    body += (line.size() >= 4 ? line.substr(4) : "") + "\n";
    pos = end + 1;
  }
  auto mc = ParseMeshConfig(body);
  ASSERT_TRUE(mc.ok()) << mc.status().message();
  EXPECT_EQ(mc->ca_address, "ternd.tern-system.svc:15012");
}

// --mesh-config takes the shipped ConfigMap file as well as the bare mesh.yaml.
TEST(MeshConfig, LoadsTheConfigMapFileOrTheBareDocument) {
  auto from_configmap = LoadMeshConfig(std::string(TERN_SOURCE_DIR) + "/manifests/base/configmap-mesh.yaml");
  ASSERT_TRUE(from_configmap.ok()) << from_configmap.status().message();
  EXPECT_EQ(from_configmap->ca_address, "ternd.tern-system.svc:15012");
  char tmpl[] = "/tmp/tern-mesh-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  ASSERT_TRUE(WriteFileAtomically(dir + "/bare.yaml", "revision: canary\n").ok());
  auto bare = LoadMeshConfig(dir + "/bare.yaml");
  ASSERT_TRUE(bare.ok()) << bare.status().message();
  EXPECT_EQ(bare->revision, "canary");
  ASSERT_TRUE(WriteFileAtomically(dir + "/no-key.yaml", "apiVersion: v1\nkind: ConfigMap\ndata: {other: x}\n").ok());
  auto no_key = LoadMeshConfig(dir + "/no-key.yaml");
  ASSERT_FALSE(no_key.ok());
  EXPECT_NE(no_key.status().message().find("data[\"mesh.yaml\"]: a ConfigMap given as the mesh config must hold mesh.yaml"),
            std::string::npos) << no_key.status().message();
  ASSERT_TRUE(WriteFileAtomically(dir + "/bad.yaml", "kind: ConfigMap\ndata:\n  mesh.yaml: \"bogus: 1\"\n").ok());
  auto bad = LoadMeshConfig(dir + "/bad.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("bad.yaml: data[\"mesh.yaml\"]: bogus: unknown field"), std::string::npos)
      << bad.status().message();
  std::system(("rm -rf " + dir).c_str());
}

TEST(MeshConfig, FieldsParsedAndValidated) {
  auto mc = ParseMeshConfig(R"(
revision: canary
injection:
  nativeSidecars: false
  cniMode: true
  resources:
    requests: {cpu: 50m}
  neverInjectSelector:
  - matchLabels: {skip: "yes"}
capture:
  interceptionMode: TPROXY
  excludeOutboundPorts: "25,587"
)");
  ASSERT_TRUE(mc.ok()) << mc.status().message();
  EXPECT_EQ(mc->revision, "canary");
  EXPECT_FALSE(mc->injection.native_sidecars);
  EXPECT_TRUE(mc->injection.cni_mode);
  EXPECT_EQ(mc->injection.resources.requests.size(), 1u);
  ASSERT_EQ(mc->injection.never_inject_selector.size(), 1u);
  EXPECT_TRUE(mc->injection.never_inject_selector[0].Matches({{"skip", "yes"}}));
  EXPECT_EQ(mc->capture.interception_mode, InterceptionMode::kTproxy);
}

TEST(MeshConfig, EveryErrorHasItsPath) {
  auto mc = ParseMeshConfig(R"(
revison: typo
injection:
  nativeSidecars: "yes please"
  proxyLogLevel: loud
  resources:
    limits: {cpu: lots}
capture:
  interceptionMode: MAGIC
  excludeOutboundIPRanges: 10.0.0.0/33
)");
  ASSERT_FALSE(mc.ok());
  std::string msg = mc.status().message();
  for (const char* path : {"revison: unknown field", "injection.nativeSidecars: must be true or false", "injection.proxyLogLevel:",
                           "injection.resources.limits.cpu:", "capture.interceptionMode:",
                           "capture.excludeOutboundIPRanges:"}) {
    EXPECT_NE(msg.find(path), std::string::npos) << path << " in " << msg;
  }
}

TEST(MeshConfig, NotYaml) {
  auto mc = ParseMeshConfig("injection: [unclosed");
  ASSERT_FALSE(mc.ok());
  EXPECT_NE(mc.status().message().find("invalid YAML"), std::string::npos);
}

}  // namespace
}  // namespace tern
