// The config snapshot: the seed scenario as a snapshot (its Istio resources verbatim from the
// seed document), protocol selection as Istio does it, and bad snapshots refused with every
// error's path.
#include "core/config/snapshot.h"

#include <gtest/gtest.h>

#include "core/base/files.h"
#include "core/yaml/yaml_json.h"

namespace tern::config {
namespace {

using nlohmann::json;

std::string Seed() { return *ReadFile(std::string(TERN_SOURCE_DIR) + "/core/config/testdata/seed.yaml"); }

TEST(Snapshot, TheSeedScenarioParses) {
  auto snap = ParseSnapshot(Seed());
  ASSERT_TRUE(snap.ok()) << snap.status().message();
  const Snapshot& s = **snap;
  EXPECT_EQ(s.version, "1");
  EXPECT_EQ(s.workload.labels.at("version"), "v1");
  ASSERT_EQ(s.services.size(), 2u);
  EXPECT_EQ(s.services[0].name, "product-service");
  EXPECT_EQ(s.services[0].namespace_, "my-app");
  EXPECT_EQ(s.services[0].ports[0].protocol, Protocol::kHttp);
  EXPECT_EQ(s.services[1].ports[1].protocol, Protocol::kGrpc);
  ASSERT_EQ(s.endpoints.size(), 3u);
  EXPECT_EQ(s.endpoints[1].labels.at("version"), "v2");
  ASSERT_EQ(s.resources.size(), 2u);
  EXPECT_EQ(s.resources[0].meta.kind, "VirtualService");
  EXPECT_EQ(s.resources[1].meta.kind, "DestinationRule");
}

// The resources in testdata/seed.yaml are the seed document's, unchanged.
TEST(Snapshot, ItsResourcesAreTheSeedsVerbatim) {
  auto seed_doc = ReadFile(std::string(TERN_SHARED_DIR) + "/seed/service-mesh-pattern.md");
  ASSERT_TRUE(seed_doc.ok());
  auto snapshot = ParseYaml(Seed());
  ASSERT_TRUE(snapshot.ok());
  for (const auto& resource : (*snapshot)["resources"]) {
    std::string kind = resource["kind"];
    size_t at = seed_doc->find("```yaml\napiVersion: networking.istio.io/v1beta1\nkind: " + kind + "\n");
    ASSERT_NE(at, std::string::npos) << kind;
    size_t end = seed_doc->find("```", at + 8);
    auto from_seed = ParseYaml(seed_doc->substr(at + 8, end - at - 8));
    ASSERT_TRUE(from_seed.ok());
    EXPECT_EQ(resource, *from_seed) << kind;
  }
}

TEST(Snapshot, ProtocolFromAppProtocolOrPortNameAsIstio) {
  EXPECT_EQ(DetectProtocol("http", ""), Protocol::kHttp);
  EXPECT_EQ(DetectProtocol("http-web", ""), Protocol::kHttp);
  EXPECT_EQ(DetectProtocol("http2", ""), Protocol::kHttp2);
  EXPECT_EQ(DetectProtocol("grpc-api", ""), Protocol::kGrpc);
  EXPECT_EQ(DetectProtocol("tcp-db", ""), Protocol::kTcp);
  EXPECT_EQ(DetectProtocol("mongo", ""), Protocol::kTcp);
  EXPECT_EQ(DetectProtocol("tls", ""), Protocol::kTls);
  EXPECT_EQ(DetectProtocol("web", ""), Protocol::kSniff);
  EXPECT_EQ(DetectProtocol("httpx", ""), Protocol::kSniff);
  EXPECT_EQ(DetectProtocol("web", "kubernetes.io/h2c"), Protocol::kHttp2);
  EXPECT_EQ(DetectProtocol("tcp", "HTTP"), Protocol::kHttp) << "appProtocol wins over the name";
}

TEST(Snapshot, AnEmptySnapshotPassesEverythingThrough) {
  auto empty = EmptySnapshot();
  EXPECT_TRUE(empty->services.empty());
  EXPECT_EQ(empty->mesh.outbound_traffic_policy, "ALLOW_ANY");
}

TEST(Snapshot, BadSnapshotsAreRefusedWithEveryPath) {
  const std::string head = "apiVersion: tern.dev/v1alpha1\nkind: ProxySnapshot\n";
  struct Case {
    std::string body, error;
  } cases[] = {
      {"services: [{hostname: a.b.svc.cluster.local, clusterIPs: [10.0.0.300]}]",
       "services[0].clusterIPs[0]: \"10.0.0.300\" is not an IP address"},
      {"services: [{hostname: a.b.svc.cluster.local, ports: [{port: 80}, {port: 80}]}]", "services[0].ports[1].port: port 80 is listed twice"},
      {"services: [{hostname: a.b.svc.cluster.local, ports: [{name: dns, port: 53, protocol: UDP}]}]",
       "services[0].ports[0].protocol: UDP is not proxied (TCP only)"},
      {"services: [{hostname: a.b.svc.cluster.local}, {hostname: a.b.svc.cluster.local}]",
       "services[1].hostname: \"a.b.svc.cluster.local\" is listed twice"},
      {"endpoints: [{service: nope.b.svc.cluster.local, address: 10.0.0.1}]",
       "endpoints[0].service: \"nope.b.svc.cluster.local\" is not a service of this snapshot"},
      {"services: [{hostname: a.b.svc.cluster.local, ports: [{name: http, port: 80}]}]\nendpoints: [{service: a.b.svc.cluster.local, address: 10.0.0.1, ports: {grpc: 90}}]",
       "endpoints[0].ports.grpc: service a.b.svc.cluster.local has no port named \"grpc\""},
      {"endpoints: [{service: x, address: somewhere}]", "endpoints[0].address: required: an IP address"},
      {"mesh: {outboundTrafficPolicy: DENY}", "mesh.outboundTrafficPolicy: \"DENY\" is not one of ALLOW_ANY, REGISTRY_ONLY"},
      {"resources: [{apiVersion: networking.istio.io/v1, kind: VirtualService, metadata: {name: v}, spec: {hosts: [a]}}]",
       "resources[0]: VirtualService v: spec: needs at least one of http, tcp, tls"},
      {"listeners: []", "listeners: unknown field"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.body);
    auto snap = ParseSnapshot(head + c.body);
    ASSERT_FALSE(snap.ok());
    EXPECT_NE(snap.status().message().find(c.error), std::string::npos) << snap.status().message();
  }
  EXPECT_NE(ParseSnapshot("kind: Pod").status().message().find("apiVersion: must be tern.dev/v1alpha1"), std::string::npos);
}

}  // namespace
}  // namespace tern::config
