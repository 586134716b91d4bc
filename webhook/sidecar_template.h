// The containers and volumes the injector adds, built from fully resolved settings. Names,
// ports, uid/gid, volume names and env keys follow Istio's injection template so that users'
// tooling that looks for them finds them; the programs run are Tern's (tern-init, tern-proxy).
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/annotations/sidecar_annotations.h"
#include "core/meshconfig/mesh_config.h"

namespace tern::webhook {

inline constexpr const char* kInitContainerName = "istio-init";
inline constexpr const char* kValidationContainerName = "istio-validation";
inline constexpr const char* kProxyContainerName = "istio-proxy";
inline constexpr int kProxyUid = 1337;
// The CNI-mode validation step must not run as the proxy: the proxy's traffic is never
// captured, so only another uid can prove that capture is in place.
inline constexpr int kValidationUid = 1338;
inline constexpr int kOutboundPort = 15001;
inline constexpr int kInboundPort = 15006;
inline constexpr int kHealthPort = 15021;
inline constexpr int kPrometheusPort = 15090;
inline constexpr int kDefaultStatusPort = 15020;

// Every choice already made: the template only lays it out.
struct SidecarPlan {
  bool native = true;
  bool cni = false;
  bool hold = false;
  int status_port = kDefaultStatusPort;
  InterceptionMode mode = InterceptionMode::kRedirect;
  // Capture flags, as text.
  std::string include_outbound_ip_ranges, exclude_outbound_ip_ranges, include_inbound_ports, exclude_inbound_ports,
      include_outbound_ports, exclude_outbound_ports, exclude_interfaces;
  nlohmann::json resources = nlohmann::json::object();
  int concurrency = 2;
  std::string proxy_config_json = "{}";
  std::map<std::string, std::string> proxy_metadata;
  nlohmann::json pod_ports = nlohmann::json::array();
  std::vector<std::string> app_containers;
  std::string workload_name, owner;
  std::string discovery_address;  // ProxyConfig.discoveryAddress, else the mesh's
  nlohmann::json probers;             // object; empty when nothing was rewritten
  nlohmann::json prometheus_original; // object of the app's own prometheus.io/* values, or null
  int readiness_initial_delay = 0, readiness_period = 15, readiness_failure_threshold = 4;
  nlohmann::json user_volume_mounts = nlohmann::json::object();
};

// The tern-init flags (istio-iptables compatible) for this plan.
std::vector<std::string> CaptureArgs(const SidecarPlan& plan);

// CNI mode: the same settings as pod annotations (sidecar.istio.io/interceptionMode and the
// traffic.sidecar.istio.io/* keys), every one written even when empty, because tern-cni on the
// node knows nothing of the mesh config and reads exactly these.
std::map<std::string, std::string> CaptureAnnotationsFor(const SidecarPlan& plan);

nlohmann::json BuildInitContainer(const SidecarPlan& plan, const MeshConfig& mesh);
nlohmann::json BuildProxyContainer(const SidecarPlan& plan, const MeshConfig& mesh);
// The injected volumes, in the order they are listed in the status annotation.
nlohmann::json BuildVolumes(const MeshConfig& mesh);

}  // namespace tern::webhook
