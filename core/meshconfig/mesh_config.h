// Mesh-wide settings (the tern-mesh ConfigMap's mesh.yaml): identity, injection templates and
// default capture. Parsed strictly — an unknown field or a bad value is an error naming its
// path — and immutable once built; a reload builds a new one.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/annotations/sidecar_annotations.h"
#include "core/base/status.h"
#include "core/kube/label_selector.h"

namespace tern {

struct ResourceSettings {
  std::map<std::string, std::string> requests;  // cpu, memory -> quantity text
  std::map<std::string, std::string> limits;
};

struct InjectionSettings {
  bool default_policy_enabled = true;  // defaultPolicy: enabled | disabled
  std::string proxy_image = "tern/tern-proxy:0.1.0";
  std::string init_image = "tern/tern-proxy:0.1.0";
  std::string image_pull_policy = "IfNotPresent";
  bool native_sidecars = true;
  bool cni_mode = false;
  bool hold_application_until_proxy_starts = false;
  bool rewrite_app_probers = true;
  bool metrics_merging = true;
  std::string token_audience = "istio-ca";
  std::string proxy_log_level = "warning";
  ResourceSettings resources{{{"cpu", "100m"}, {"memory", "128Mi"}}, {{"cpu", "2"}, {"memory", "1Gi"}}};
  std::vector<LabelSelector> never_inject_selector;
  std::vector<LabelSelector> always_inject_selector;
  std::map<std::string, std::string> injected_annotations;
};

struct CaptureSettings {
  InterceptionMode interception_mode = InterceptionMode::kRedirect;
  std::string include_outbound_ip_ranges = "*";
  std::string exclude_outbound_ip_ranges;
  std::string include_inbound_ports = "*";
  std::string exclude_inbound_ports;
  std::string include_outbound_ports;
  std::string exclude_outbound_ports;
  std::string exclude_interfaces;
};

struct MeshConfig {
  std::string revision = "default";
  std::string trust_domain = "cluster.local";
  std::string mesh_id = "cluster.local";
  std::string cluster_id = "Kubernetes";
  std::string ca_address = "ternd.tern-system.svc:15012";
  std::string discovery_address = "ternd.tern-system.svc:15012";
  InjectionSettings injection;
  CaptureSettings capture;
};

// Parses mesh.yaml (YAML or JSON). Absent fields keep the defaults above.
Result<MeshConfig> ParseMeshConfig(const std::string& text);
Result<MeshConfig> LoadMeshConfig(const std::string& path);

}  // namespace tern
