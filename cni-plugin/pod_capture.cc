#include "cni-plugin/pod_capture.h"

#include "core/annotations/keys.h"
#include "core/annotations/sidecar_annotations.h"
#include "core/kube/label_selector.h"

namespace tern::cni {

using nlohmann::json;

PodCapture DecidePodCapture(const json& pod, FieldErrors& errors) {
  PodCapture out;
  Labels annotations;
  if (pod.is_object() && pod.contains("metadata") && pod["metadata"].is_object() &&
      pod["metadata"].contains("annotations")) {
    annotations = ParseStringMap(pod["metadata"]["annotations"], "metadata.annotations", errors);
  }
  if (!errors.empty()) return out;
  if (!annotations.contains(keys::kStatusAnnotation)) {
    out.reason = "no sidecar (no " + std::string(keys::kStatusAnnotation) + " annotation)";
    return out;
  }
  capture::CaptureText text;
  capture::CaptureFieldNames names;
  auto take = [&](const char* key, std::string* value, std::string* name) {
    *name = AnnotationPath(key);
    if (auto it = annotations.find(key); it != annotations.end()) *value = it->second;
  };
  take(keys::kInterceptionMode, &text.mode, &names.mode);
  take(keys::kIncludeInboundPorts, &text.include_inbound_ports, &names.include_inbound_ports);
  take(keys::kExcludeInboundPorts, &text.exclude_inbound_ports, &names.exclude_inbound_ports);
  take(keys::kIncludeOutboundPorts, &text.include_outbound_ports, &names.include_outbound_ports);
  take(keys::kExcludeOutboundPorts, &text.exclude_outbound_ports, &names.exclude_outbound_ports);
  take(keys::kIncludeOutboundIPRanges, &text.include_outbound_ranges, &names.include_outbound_ranges);
  take(keys::kExcludeOutboundIPRanges, &text.exclude_outbound_ranges, &names.exclude_outbound_ranges);
  take(keys::kExcludeInterfaces, &text.exclude_interfaces, &names.exclude_interfaces);
  take(keys::kKubevirtInterfaces, &text.kube_virt_interfaces, &names.kube_virt_interfaces);
  out.config = capture::ParseCaptureText(text, names, errors);
  if (!errors.empty()) return out;
  if (out.config.mode == InterceptionMode::kNone) {
    out.reason = "interception mode NONE";
    return out;
  }
  out.capture = true;
  out.reason = std::string("sidecar present, ") + InterceptionModeName(out.config.mode);
  return out;
}

}  // namespace tern::cni
