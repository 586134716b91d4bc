#include "cni-plugin/net_conf.h"

#include "cni-plugin/cni_version.h"
#include "core/base/json_limits.h"

namespace tern::cni {

using nlohmann::json;

std::string VersionForErrors(std::string_view stdin_bytes) {
  if (JsonNestingDepth(stdin_bytes) > kMaxJsonNestingDepth) return kLatestVersion;
  json j = json::parse(stdin_bytes, nullptr, false);
  if (j.is_object() && j.contains("cniVersion") && j["cniVersion"].is_string() &&
      IsSupportedVersion(j["cniVersion"].get<std::string>())) {
    return j["cniVersion"].get<std::string>();
  }
  return kLatestVersion;
}

namespace {

Error Invalid(const std::string& path, const std::string& what) { return {kInvalidConfig, path + ": " + what, ""}; }

std::optional<Error> RequiredString(const json& j, const char* key, std::string* out) {
  if (!j.contains(key)) return Invalid(key, "required");
  if (!j[key].is_string() || j[key].get<std::string>().empty()) return Invalid(key, "must be a non-empty string");
  *out = j[key].get<std::string>();
  return std::nullopt;
}

std::optional<Error> ParseKubernetes(const json& k, NetConf* out) {
  if (!k.is_object()) return Invalid("kubernetes", "must be an object");
  for (auto it = k.begin(); it != k.end(); ++it) {
    const std::string& key = it.key();
    const json& v = it.value();
    std::string path = "kubernetes." + key;
    if (key == "kubeconfig") {
      if (!v.is_string() || v.get<std::string>().empty()) return Invalid(path, "must be a non-empty file path");
      out->kubeconfig = v.get<std::string>();
    } else if (key == "excludeNamespaces") {
      if (!v.is_array()) return Invalid(path, "must be an array of namespace names");
      for (size_t i = 0; i < v.size(); ++i) {
        if (!v[i].is_string()) return Invalid(path + "[" + std::to_string(i) + "]", "must be a string");
        out->exclude_namespaces.push_back(v[i].get<std::string>());
      }
    } else if (key == "timeoutMs") {
      if (!v.is_number_integer() || v.get<long long>() < 1 || v.get<long long>() > 60000) {
        return Invalid(path, "must be an integer from 1 to 60000");
      }
      out->api_timeout = std::chrono::milliseconds(v.get<long long>());
    } else {
      return Error{kUnsupportedField, path + ": unsupported field (value " + v.dump() + ")", ""};
    }
  }
  if (out->kubeconfig.empty()) return Invalid("kubernetes.kubeconfig", "required");
  return std::nullopt;
}

}  // namespace

std::optional<Error> ParseNetConf(std::string_view stdin_bytes, NetConf* out) {
  if (stdin_bytes.empty()) return Error{kDecodeFailure, "network configuration: stdin is empty", ""};
  if (JsonNestingDepth(stdin_bytes) > kMaxJsonNestingDepth) {
    return Error{kDecodeFailure,
                 "network configuration: nests deeper than " + std::to_string(kMaxJsonNestingDepth) + " levels", ""};
  }
  json j;
  try {
    j = json::parse(stdin_bytes);
  } catch (const json::exception& e) {
    return Error{kDecodeFailure, std::string("network configuration: not valid JSON: ") + e.what(), ""};
  }
  if (!j.is_object()) return Error{kDecodeFailure, "network configuration: must be a JSON object", ""};
  NetConf conf;
  if (auto e = RequiredString(j, "cniVersion", &conf.cni_version)) return e;
  if (!IsSupportedVersion(conf.cni_version)) {
    std::string supported;
    for (const auto& v : SupportedVersions()) supported += (supported.empty() ? "" : ", ") + v;
    return Error{kIncompatibleVersion,
                 "cniVersion: " + conf.cni_version + " is not supported (tern-cni speaks " + supported + ")", ""};
  }
  if (auto e = RequiredString(j, "name", &conf.name)) return e;
  if (auto e = RequiredString(j, "type", &conf.type)) return e;
  if (!j.contains("kubernetes")) return Invalid("kubernetes", "required (kubeconfig for reading pods)");
  if (auto e = ParseKubernetes(j["kubernetes"], &conf)) return e;
  if (j.contains("prevResult") && !j["prevResult"].is_null()) conf.prev_result = j["prevResult"];
  *out = std::move(conf);
  return std::nullopt;
}

}  // namespace tern::cni
