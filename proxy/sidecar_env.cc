#include "proxy/sidecar_env.h"

#include <unistd.h>

namespace tern::proxy {

using nlohmann::json;

namespace {

// "host:port" or "[v6]:port" with a port from 1 to 65535.
bool IsHostPort(const std::string& s) {
  size_t colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size()) return false;
  std::string port = s.substr(colon + 1);
  if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) return false;
  int n = std::stoi(port);
  return n >= 1 && n <= 65535;
}

}  // namespace

std::map<std::string, std::string> ProcessEnvironment() {
  std::map<std::string, std::string> out;
  for (char** e = environ; e && *e; ++e) {
    std::string entry = *e;
    size_t eq = entry.find('=');
    if (eq != std::string::npos) out.emplace(entry.substr(0, eq), entry.substr(eq + 1));
  }
  return out;
}

SidecarEnvironment ReadSidecarEnvironment(const std::map<std::string, std::string>& vars,
                                          std::vector<std::string>* problems) {
  SidecarEnvironment env;
  auto get = [&](const char* name) -> std::string {
    auto it = vars.find(name);
    return it == vars.end() ? "" : it->second;
  };
  for (const auto& [name, value] : vars) {
    if (name.rfind("ISTIO_META_", 0) == 0) env.metadata.emplace(name, value);
  }
  auto problem = [&](const char* name, const std::string& why) { problems->push_back(std::string(name) + ": " + why); };
  env.pod_name = get("POD_NAME");
  env.pod_namespace = get("POD_NAMESPACE");
  env.service_account = get("SERVICE_ACCOUNT");
  env.node_name = get("ISTIO_META_NODE_NAME");
  for (auto [name, into] : {std::pair{"INSTANCE_IP", &env.instance_ip}, std::pair{"HOST_IP", &env.host_ip}}) {
    std::string text = get(name);
    if (text.empty()) continue;
    boost::system::error_code ec;
    auto address = boost::asio::ip::make_address(text, ec);
    if (ec) problem(name, "\"" + text + "\" is not an IP address");
    else *into = address;
  }
  for (auto [name, into] : {std::pair{"TERN_DISCOVERY_ADDRESS", &env.discovery_address}, std::pair{"CA_ADDR", &env.ca_address}}) {
    std::string text = get(name);
    if (text.empty()) continue;
    if (IsHostPort(text)) *into = text;
    else problem(name, "\"" + text + "\" is not HOST:PORT");
  }
  if (std::string td = get("TRUST_DOMAIN"); !td.empty()) env.trust_domain = td;
  env.cluster_id = get("ISTIO_META_CLUSTER_ID");
  env.mesh_id = get("ISTIO_META_MESH_ID");
  env.workload_name = get("ISTIO_META_WORKLOAD_NAME");
  env.owner = get("ISTIO_META_OWNER");
  for (std::string containers = get("ISTIO_META_APP_CONTAINERS"); !containers.empty();) {
    size_t comma = containers.find(',');
    if (!containers.substr(0, comma).empty()) env.app_containers.push_back(containers.substr(0, comma));
    containers = comma == std::string::npos ? "" : containers.substr(comma + 1);
  }
  auto json_of = [&](const char* name, bool want_object) -> json {
    std::string text = get(name);
    if (text.empty()) return nullptr;
    json doc = json::parse(text, nullptr, false);
    if (doc.is_discarded() || (want_object ? !doc.is_object() : !doc.is_array())) {
      problem(name, want_object ? "not a JSON object" : "not a JSON list");
      return nullptr;
    }
    return doc;
  };
  if (json ports = json_of("ISTIO_META_POD_PORTS", false); ports.is_array()) env.pod_ports = ports;
  if (json pc = json_of("PROXY_CONFIG", true); pc.is_object()) env.proxy_config = pc;
  env.prometheus_annotations = json_of("ISTIO_PROMETHEUS_ANNOTATIONS", true);
  if (std::string probers = get("ISTIO_KUBE_APP_PROBERS"); !probers.empty()) {
    auto parsed = ParseAppProbers(probers);
    if (parsed.ok()) env.probers = std::move(parsed).value();
    else problems->push_back(parsed.status().message());
  }
  return env;
}

}  // namespace tern::proxy
