#include "cni-plugin/cni_version.h"

#include <algorithm>
#include <charconv>

#include "core/net/ip_range.h"

namespace tern::cni {

using nlohmann::json;

const std::vector<std::string>& SupportedVersions() {
  static const std::vector<std::string> versions = {"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"};
  return versions;
}

bool IsSupportedVersion(std::string_view version) {
  const auto& v = SupportedVersions();
  return std::find(v.begin(), v.end(), version) != v.end();
}

bool VersionLess(std::string_view a, std::string_view b) {
  auto parts = [](std::string_view s) {
    std::vector<int> out;
    while (!s.empty()) {
      size_t dot = s.find('.');
      std::string_view item = s.substr(0, dot);
      int n = 0;
      std::from_chars(item.data(), item.data() + item.size(), n);
      out.push_back(n);
      if (dot == std::string_view::npos) break;
      s.remove_prefix(dot + 1);
    }
    return out;
  };
  return parts(a) < parts(b);
}

namespace {

Error Invalid(const std::string& path, const std::string& what) { return {kInvalidConfig, path + ": " + what, ""}; }

}  // namespace

std::optional<Error> ConvertResult(const json& result, const std::string& result_version,
                                   const std::string& target_version, const std::string& path, json* out) {
  if (!result.is_object()) return Invalid(path, "must be an object (a CNI result)");
  if (!IsSupportedVersion(result_version)) {
    return Error{kIncompatibleVersion, path + ".cniVersion: " + result_version + " is not supported", ""};
  }
  json converted = result;
  if (converted.contains("interfaces")) {
    const json& ifs = converted["interfaces"];
    if (!ifs.is_array()) return Invalid(path + ".interfaces", "must be an array");
    for (size_t i = 0; i < ifs.size(); ++i) {
      std::string at = path + ".interfaces[" + std::to_string(i) + "]";
      if (!ifs[i].is_object()) return Invalid(at, "must be an object");
      if (!ifs[i].contains("name") || !ifs[i]["name"].is_string()) return Invalid(at + ".name", "required string");
    }
  }
  if (converted.contains("ips")) {
    json& ips = converted["ips"];
    if (!ips.is_array()) return Invalid(path + ".ips", "must be an array");
    for (size_t i = 0; i < ips.size(); ++i) {
      std::string at = path + ".ips[" + std::to_string(i) + "]";
      json& ip = ips[i];
      if (!ip.is_object()) return Invalid(at, "must be an object");
      if (!ip.contains("address") || !ip["address"].is_string()) return Invalid(at + ".address", "required string");
      auto cidr = ParseIpRange(ip["address"].get<std::string>());  // keeps the host bits, as results do
      if (!cidr.ok()) {
        return Invalid(at + ".address", "\"" + ip["address"].get<std::string>() + "\" is not an address in CIDR form");
      }
      if (ip.contains("interface") && !ip["interface"].is_number_unsigned()) {
        return Invalid(at + ".interface", "must be an index into interfaces");
      }
      // 0.3.x and 0.4.0 name each address's family; 1.0.0 dropped the field.
      if (target_version.starts_with("0.")) {
        ip["version"] = cidr->v6 ? "6" : "4";
      } else {
        ip.erase("version");
      }
    }
  }
  if (converted.contains("routes") && !converted["routes"].is_array()) return Invalid(path + ".routes", "must be an array");
  if (converted.contains("dns") && !converted["dns"].is_object()) return Invalid(path + ".dns", "must be an object");
  converted["cniVersion"] = target_version;
  *out = std::move(converted);
  return std::nullopt;
}

}  // namespace tern::cni
