// CNI spec versions: which ones tern-cni speaks, and the conversion of a chained plugin's
// prevResult into the version the runtime asked for.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "cni-plugin/cni_error.h"

namespace tern::cni {

inline constexpr const char* kLatestVersion = "1.1.0";
// 0.3.0 is the first version with the interfaces/ips/routes result that chaining needs.
const std::vector<std::string>& SupportedVersions();
bool IsSupportedVersion(std::string_view version);
// a < b for dotted versions ("0.4.0" < "1.0.0").
bool VersionLess(std::string_view a, std::string_view b);

// Validates a result (the prevResult handed to a chained plugin) and returns it in
// `target_version`: 0.3.x/0.4.0 results carry "version" on each IP, 1.x results do not. Errors
// name the field under `path` ("prevResult.ips[0].address: ...").
std::optional<Error> ConvertResult(const nlohmann::json& result, const std::string& result_version,
                                   const std::string& target_version, const std::string& path,
                                   nlohmann::json* out);

}  // namespace tern::cni
