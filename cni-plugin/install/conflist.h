// Editing the node's CNI configuration to chain tern-cni last, and undoing it. Pure functions
// over the file's JSON; the installer does the file system part.
//
// The runtime uses the lexicographically first .conflist/.conf/.json file in its conf dir. A
// .conf file holds one plugin; chaining needs a list, so it is rewritten as the equivalent
// .conflist (same cniVersion and name, the plugin as the first entry).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/base/status.h"

namespace tern::cni {

inline constexpr const char* kPluginType = "tern-cni";

// The file the runtime would load from these names (already listed from the conf dir), or
// nullopt when none has a CNI configuration extension.
std::optional<std::string> PickConfigFile(std::vector<std::string> names);

// `config` with `plugin` as the last entry of its plugin list; an earlier tern-cni entry is
// replaced, so inserting twice gives the same file. Accepts a .conf (single plugin) or a
// .conflist; errors name what is wrong with the file.
Result<nlohmann::json> InsertPlugin(const nlohmann::json& config, const nlohmann::json& plugin);

// `config` without any tern-cni entry.
nlohmann::json RemovePlugin(const nlohmann::json& config);

// Whether `config` lists a tern-cni entry equal to `plugin` as its last plugin.
bool HasPluginLast(const nlohmann::json& config, const nlohmann::json& plugin);

// The kubeconfig tern-cni reads: the API server, its CA and the service-account token.
std::string RenderPluginKubeconfig(const std::string& server, const std::string& ca_pem, const std::string& token);

}  // namespace tern::cni
