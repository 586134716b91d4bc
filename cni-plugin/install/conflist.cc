#include "cni-plugin/install/conflist.h"

#include <algorithm>

#include "core/base/base64.h"

namespace tern::cni {

using nlohmann::json;

namespace {

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool IsOurs(const json& plugin) { return plugin.is_object() && plugin.value("type", json()) == kPluginType; }

}  // namespace

std::optional<std::string> PickConfigFile(std::vector<std::string> names) {
  std::sort(names.begin(), names.end());
  for (const auto& n : names) {
    if (EndsWith(n, ".conflist") || EndsWith(n, ".conf") || EndsWith(n, ".json")) return n;
  }
  return std::nullopt;
}

Result<json> InsertPlugin(const json& config, const json& plugin) {
  if (!config.is_object()) return Status::Error("not a JSON object");
  json list;
  if (config.contains("plugins")) {
    if (!config["plugins"].is_array()) return Status::Error("plugins: must be an array");
    if (config["plugins"].empty()) return Status::Error("plugins: is empty; there is no interface plugin to chain after");
    list = config;
  } else {
    // A single-plugin .conf: the same network as a one-entry list.
    if (!config.contains("type") || !config["type"].is_string()) return Status::Error("type: required (a plugin)");
    list = {{"cniVersion", config.value("cniVersion", "1.0.0")}, {"name", config.value("name", "k8s-pod-network")}};
    json first = config;
    first.erase("cniVersion");
    first.erase("name");
    list["plugins"] = json::array({first});
  }
  json& plugins = list["plugins"];
  json kept = json::array();
  for (const auto& p : plugins) {
    if (!IsOurs(p)) kept.push_back(p);
  }
  if (kept.empty()) return Status::Error("plugins: holds only tern-cni; there is no interface plugin to chain after");
  kept.push_back(plugin);
  plugins = std::move(kept);
  return list;
}

json RemovePlugin(const json& config) {
  if (!config.is_object() || !config.contains("plugins") || !config["plugins"].is_array()) return config;
  json out = config;
  json kept = json::array();
  for (const auto& p : config["plugins"]) {
    if (!IsOurs(p)) kept.push_back(p);
  }
  out["plugins"] = std::move(kept);
  return out;
}

bool HasPluginLast(const json& config, const json& plugin) {
  return config.is_object() && config.contains("plugins") && config["plugins"].is_array() &&
         !config["plugins"].empty() && config["plugins"].back() == plugin;
}

std::string RenderPluginKubeconfig(const std::string& server, const std::string& ca_pem, const std::string& token) {
  return "# Written by tern-cni-install from its service account; tern-cni reads pods with it.\n"
         "apiVersion: v1\nkind: Config\ncurrent-context: tern-cni\n"
         "clusters:\n- name: local\n  cluster:\n    server: " + server + "\n"
         "    certificate-authority-data: " + Base64Encode(ca_pem) + "\n"
         "contexts:\n- name: tern-cni\n  context: {cluster: local, user: tern-cni}\n"
         "users:\n- name: tern-cni\n  user:\n    token: " + token + "\n";
}

}  // namespace tern::cni
