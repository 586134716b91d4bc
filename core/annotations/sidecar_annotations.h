// The pod annotations that tune injection, capture and the sidecar, parsed and validated in one
// place. Every error names the annotation and the value, so a rejected pod says exactly what to
// fix. Values stay in the text form the user wrote where they are passed on (capture flags).
#pragma once

#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/base/field_errors.h"
#include "core/kube/label_selector.h"

namespace tern {

enum class InterceptionMode { kRedirect, kTproxy, kNone };
const char* InterceptionModeName(InterceptionMode mode);
bool ParseInterceptionMode(std::string_view text, InterceptionMode* out);

// Go's strconv.ParseBool, which Istio uses for its boolean annotations.
bool ParseAnnotationBool(std::string_view text, bool* out);

// The traffic.sidecar.istio.io/* and interception settings; unset fields fall back to mesh config.
struct CaptureAnnotations {
  std::optional<std::string> include_inbound_ports, exclude_inbound_ports;
  std::optional<std::string> include_outbound_ports, exclude_outbound_ports;
  std::optional<std::string> include_outbound_ip_ranges, exclude_outbound_ip_ranges;
  std::optional<std::string> exclude_interfaces;
  std::optional<InterceptionMode> interception_mode;
};

// proxy.istio.io/config: a ProxyConfig fragment in YAML or JSON. Fields Tern acts on are typed;
// the whole document is kept (as JSON) to hand to the proxy.
struct ProxyConfigAnnotation {
  nlohmann::json document = nlohmann::json::object();
  std::optional<int> concurrency;
  std::optional<bool> hold_application_until_proxy_starts;
  std::map<std::string, std::string> proxy_metadata;
};

struct SidecarAnnotations {
  std::optional<std::string> proxy_cpu, proxy_memory, proxy_cpu_limit, proxy_memory_limit;
  std::optional<bool> rewrite_app_probers;
  std::optional<bool> native_sidecar;
  std::optional<int> status_port;  // 0 disables the status port (and probe rewriting)
  std::optional<int> readiness_initial_delay_seconds, readiness_period_seconds, readiness_failure_threshold;
  std::optional<std::string> readiness_application_ports;
  std::optional<ProxyConfigAnnotation> proxy_config;
  nlohmann::json user_volumes = nlohmann::json::object();        // name -> Volume source
  nlohmann::json user_volume_mounts = nlohmann::json::object();  // name -> VolumeMount fields
  CaptureAnnotations capture;
};

// Parses the annotations Tern understands; other keys are ignored. Errors go to `errors` with the
// path metadata.annotations["<key>"].
SidecarAnnotations ParseSidecarAnnotations(const Labels& annotations, FieldErrors& errors);

// Validates one capture annotation's text (ports, ranges, interfaces); shared with tern-cni.
CaptureAnnotations ParseCaptureAnnotations(const Labels& annotations, FieldErrors& errors);

// Parses a proxy.istio.io/config document.
Result<ProxyConfigAnnotation> ParseProxyConfigAnnotation(const std::string& text);

// The error path for an annotation key, as users see it in an admission error.
std::string AnnotationPath(const std::string& key);

}  // namespace tern
