// The injection test corpus, shared by the injector's golden test and the admission handler's
// HTTPS test: the same pods go through the pure function and through the server, and must give
// the same result. Test-only.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/base/files.h"
#include "core/meshconfig/mesh_config.h"
#include "core/yaml/yaml_json.h"

namespace tern::webhook::testing {

struct CorpusCase {
  std::string name;        // also the golden file's name: webhook/testdata/golden/<name>.golden
  std::string input;       // path relative to the source tree, or "compat:<file>" for ../shared
  std::string mesh_yaml;   // mesh config for this case ("" = defaults)
};

inline std::vector<CorpusCase> InjectionCorpus() {
  return {
      {"hello", "compat:hello.yaml", ""},
      {"hello-probes", "compat:hello-probes.yaml", ""},
      {"multi-init", "compat:multi-init.yaml", ""},
      {"traffic-annotations", "compat:traffic-annotations.yaml", ""},
      {"status-annotations", "compat:status_annotations.yaml", ""},
      {"resource-annotations", "compat:resource_annotations.yaml", ""},
      {"native-sidecar-opt-out", "compat:native-sidecar-opt-out.yaml", ""},
      {"tcp-probes", "compat:tcp-probes.yaml", ""},
      {"user-volume", "compat:user-volume.yaml", ""},
      {"probes-rewrite-off", "compat:hello-probes-with-flag-unset-in-annotation.yaml", ""},
      {"hold-application", "compat:hello-probes-proxyHoldApplication-ProxyConfig.yaml", ""},
      {"startup-ready-live", "compat:startup_ready_live.yaml", ""},
      {"host-network", "compat:hello-host-network.yaml", ""},
      {"annotation-opt-out", "compat:hello-ignore.yaml", ""},
      {"cni-mode", "compat:hello.yaml", "injection: {cniMode: true}\n"},
      {"classic-mesh-default", "compat:multi-init.yaml", "injection: {nativeSidecars: false}\n"},
      {"classic-hold", "webhook/testdata/classic-hold.yaml", ""},
      {"tproxy", "webhook/testdata/tproxy.yaml", ""},
      {"metrics-merge", "webhook/testdata/metrics-merge.yaml", ""},
      {"scrape-false", "webhook/testdata/scrape-false.yaml", ""},
      {"grpc-probe", "webhook/testdata/grpc-probe.yaml", ""},
      {"cronjob", "webhook/testdata/cronjob.yaml", ""},
      {"replicaset-pod", "webhook/testdata/replicaset-pod.yaml", ""},
      {"label-opt-out", "webhook/testdata/label-opt-out.yaml", ""},
      {"bad-annotations", "webhook/testdata/bad-annotations.yaml", ""},
      {"reserved-port", "webhook/testdata/reserved-port.yaml", ""},
      {"proxy-override", "compat:proxy-override.yaml", ""},
      {"never-inject-selector", "compat:hello.yaml", "injection:\n  neverInjectSelector:\n  - matchLabels: {tier: backend}\n"},
  };
}

inline std::string CorpusPath(const std::string& input) {
  if (input.rfind("compat:", 0) == 0) return std::string(TERN_SHARED_DIR) + "/compat/istio-inject/" + input.substr(7);
  return std::string(TERN_SOURCE_DIR) + "/" + input;
}

inline std::vector<nlohmann::json> LoadCorpusDocuments(const CorpusCase& c) {
  auto text = ReadFile(CorpusPath(c.input));
  if (!text.ok()) throw std::runtime_error(text.status().message());
  auto docs = ParseYamlDocuments(*text);
  if (!docs.ok()) throw std::runtime_error(docs.status().message());
  return *docs;
}

inline MeshConfig CorpusMesh(const CorpusCase& c) {
  auto mc = ParseMeshConfig(c.mesh_yaml);
  if (!mc.ok()) throw std::runtime_error(mc.status().message());
  return *mc;
}

}  // namespace tern::webhook::testing
