// A pod as the injector leaves it in CNI mode: the sidecar status annotation and every capture
// setting written out as annotations (webhook/sidecar_template.h, CaptureAnnotationsFor), for
// the tests, the e2e and the bench to serve from their fake API servers. Test-only.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace tern::cni::testing {

// `overrides` replace or add annotations (e.g. {"sidecar.istio.io/interceptionMode", "TPROXY"}).
inline nlohmann::json CniModePod(const std::string& ns, const std::string& name,
                                 const nlohmann::json& overrides = nlohmann::json::object()) {
  nlohmann::json annotations = {
      {"sidecar.istio.io/status", R"({"initContainers":["istio-validation","istio-proxy"]})"},
      {"sidecar.istio.io/interceptionMode", "REDIRECT"},
      {"traffic.sidecar.istio.io/includeOutboundIPRanges", "*"},
      {"traffic.sidecar.istio.io/excludeOutboundIPRanges", ""},
      {"traffic.sidecar.istio.io/includeInboundPorts", "*"},
      {"traffic.sidecar.istio.io/excludeInboundPorts", "15090,15021,15020"},
      {"traffic.sidecar.istio.io/includeOutboundPorts", ""},
      {"traffic.sidecar.istio.io/excludeOutboundPorts", ""},
      {"traffic.sidecar.istio.io/excludeInterfaces", ""}};
  annotations.merge_patch(overrides);
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata", {{"name", name}, {"namespace", ns}, {"annotations", annotations}}}};
}

}  // namespace tern::cni::testing
