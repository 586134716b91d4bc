#include "webhook/decision.h"

#include <gtest/gtest.h>

namespace tern::webhook {
namespace {

MeshConfig Mesh(const std::string& yaml = "") { return *ParseMeshConfig(yaml); }

Decision Decide(std::optional<Labels> ns_labels, Labels pod_labels = {}, Labels pod_annotations = {},
                const MeshConfig& mesh = Mesh(), std::string ns = "app", bool host_network = false) {
  return DecideInjection({ns, std::move(ns_labels), std::move(pod_labels), std::move(pod_annotations), host_network},
                         mesh);
}

TEST(Decision, NamespaceLabel) {
  EXPECT_TRUE(Decide(Labels{{"istio-injection", "enabled"}}).inject);
  auto d = Decide(Labels{{"istio-injection", "disabled"}}, {{"sidecar.istio.io/inject", "true"}});
  EXPECT_FALSE(d.inject);
  EXPECT_EQ(d.reason, "namespace app has istio-injection=disabled");
  EXPECT_FALSE(Decide(Labels{}).inject);
  EXPECT_TRUE(Decide(std::nullopt).inject) << "unknown labels: the namespaceSelector already matched";
}

TEST(Decision, Revisions) {
  EXPECT_TRUE(Decide(Labels{{"istio.io/rev", "default"}}).inject);
  EXPECT_FALSE(Decide(Labels{{"istio.io/rev", "canary"}}).inject);
  EXPECT_TRUE(Decide(Labels{{"istio.io/rev", "canary"}}, {}, {}, Mesh("revision: canary")).inject);
  // istio-injection takes precedence over istio.io/rev.
  EXPECT_TRUE(Decide(Labels{{"istio-injection", "enabled"}, {"istio.io/rev", "canary"}}).inject);
  EXPECT_FALSE(Decide(Labels{{"istio-injection", "enabled"}}, {{"istio.io/rev", "canary"}}).inject);
  EXPECT_TRUE(Decide(Labels{}, {{"istio.io/rev", "default"}}).inject) << "pod-level revision opt-in";
}

TEST(Decision, PodLabelBeatsAnnotationAndSelectors) {
  Labels enabled{{"istio-injection", "enabled"}};
  EXPECT_FALSE(Decide(enabled, {{"sidecar.istio.io/inject", "false"}}, {{"sidecar.istio.io/inject", "true"}}).inject);
  EXPECT_FALSE(Decide(enabled, {}, {{"sidecar.istio.io/inject", "false"}}).inject);
  EXPECT_TRUE(Decide(Labels{}, {{"sidecar.istio.io/inject", "true"}}).inject) << "object-level opt-in";
  EXPECT_FALSE(Decide(enabled, {{"sidecar.istio.io/inject", "nonsense"}}).inject);
  MeshConfig never = Mesh("injection:\n  neverInjectSelector:\n  - matchLabels: {batch: \"yes\"}\n");
  EXPECT_FALSE(Decide(enabled, {{"batch", "yes"}}, {}, never).inject);
  EXPECT_TRUE(Decide(enabled, {{"batch", "yes"}, {"sidecar.istio.io/inject", "true"}}, {}, never).inject);
  MeshConfig disabled = Mesh("injection:\n  defaultPolicy: disabled\n  alwaysInjectSelector:\n  - matchLabels: {mesh: \"on\"}\n");
  EXPECT_FALSE(Decide(enabled, {}, {}, disabled).inject);
  EXPECT_TRUE(Decide(enabled, {{"mesh", "on"}}, {}, disabled).inject);
}

TEST(Decision, NeverInjected) {
  EXPECT_FALSE(Decide(std::nullopt, {{"sidecar.istio.io/inject", "true"}}, {}, Mesh(), "kube-system").inject);
  EXPECT_FALSE(Decide(std::nullopt, {}, {}, Mesh(), "kube-public").inject);
  auto d = Decide(Labels{{"istio-injection", "enabled"}}, {}, {}, Mesh(), "app", true);
  EXPECT_FALSE(d.inject);
  EXPECT_NE(d.reason.find("hostNetwork"), std::string::npos);
}

}  // namespace
}  // namespace tern::webhook
