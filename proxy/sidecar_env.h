// The environment the injector gives the sidecar container (webhook/sidecar_template.cc), read
// once at start. Who the proxy is (POD_NAME, POD_NAMESPACE, SERVICE_ACCOUNT, INSTANCE_IP), where
// the control plane is (TERN_DISCOVERY_ADDRESS, CA_ADDR, TRUST_DOMAIN), the pod's ProxyConfig
// (PROXY_CONFIG), the app's rewritten probes (ISTIO_KUBE_APP_PROBERS), the app's original scrape
// settings (ISTIO_PROMETHEUS_ANNOTATIONS) and the node metadata (ISTIO_META_*). Values that do
// not parse are reported and left empty: the proxy still starts and passes traffic.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/ip/address.hpp>
#include <nlohmann/json.hpp>

#include "proxy/app_prober.h"

namespace tern::proxy {

struct SidecarEnvironment {
  std::string pod_name, pod_namespace, service_account, node_name;
  std::optional<boost::asio::ip::address> instance_ip, host_ip;
  std::string discovery_address;  // host:port
  std::string ca_address;         // host:port
  std::string trust_domain = "cluster.local";
  std::string cluster_id, mesh_id, workload_name, owner;
  std::vector<std::string> app_containers;
  nlohmann::json pod_ports = nlohmann::json::array();      // [{"containerPort": 80, ...}]
  nlohmann::json proxy_config = nlohmann::json::object();  // the pod's ProxyConfig
  std::map<std::string, AppProbe> probers;                  // by the rewritten probe's path
  nlohmann::json prometheus_annotations;                    // null when the app set none
  std::map<std::string, std::string> metadata;              // every ISTIO_META_* as given
};

// `vars`: the process's environment (ProcessEnvironment()). Each problem is "<VARIABLE>: <why>".
SidecarEnvironment ReadSidecarEnvironment(const std::map<std::string, std::string>& vars,
                                          std::vector<std::string>* problems);

// extern char** environ, as name -> value.
std::map<std::string, std::string> ProcessEnvironment();

}  // namespace tern::proxy
