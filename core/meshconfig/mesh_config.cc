#include "core/meshconfig/mesh_config.h"

#include <functional>
#include <set>

#include "core/base/files.h"
#include "core/base/object_reader.h"
#include "core/kube/quantity.h"
#include "core/net/ip_range.h"
#include "core/yaml/yaml_json.h"

namespace tern {
namespace {

using nlohmann::json;

void ReadQuantities(const json* v, const std::string& path, std::map<std::string, std::string>& out, FieldErrors& errors) {
  if (!v) return;
  if (!v->is_object()) {
    errors.Add(path, "must be a map of resource name to quantity");
    return;
  }
  out.clear();
  for (auto it = v->begin(); it != v->end(); ++it) {
    std::string p = path + "." + it.key();
    if (it.key() != "cpu" && it.key() != "memory" && it.key() != "ephemeral-storage") {
      errors.Add(p, "unknown resource (cpu, memory, ephemeral-storage)");
      continue;
    }
    std::string text = it.value().is_string() ? it.value().get<std::string>()
                       : it.value().is_number() ? it.value().dump()
                                                 : "";
    auto q = ParseQuantity(text);
    if (!q.ok()) errors.Add(p, q.status().message());
    else out[it.key()] = text;
  }
}

void ReadSelectors(const json* v, const std::string& path, std::vector<LabelSelector>& out, FieldErrors& errors) {
  if (!v) return;
  if (!v->is_array()) {
    errors.Add(path, "must be a list of label selectors");
    return;
  }
  for (size_t i = 0; i < v->size(); ++i) {
    out.push_back(ParseLabelSelector((*v)[i], path + "[" + std::to_string(i) + "]", errors));
  }
}

void ReadCapture(ObjectReader& r, CaptureSettings& c) {
  std::string mode = InterceptionModeName(c.interception_mode);
  r.String("interceptionMode", mode);
  if (!ParseInterceptionMode(mode, &c.interception_mode)) {
    r.errors().Add(r.Path("interceptionMode"), "\"" + mode + "\" is not one of REDIRECT, TPROXY, NONE");
  }
  struct Field {
    const char* name;
    std::string* value;
    std::function<Status(const std::string&)> check;
  };
  auto ranges = [](bool wildcard) {
    return [wildcard](const std::string& s) { return ParseIpRangeList(s, wildcard).status(); };
  };
  auto ports = [](bool wildcard) {
    return [wildcard](const std::string& s) { return ParsePortList(s, wildcard).status(); };
  };
  Field fields[] = {
      {"includeOutboundIPRanges", &c.include_outbound_ip_ranges, ranges(true)},
      {"excludeOutboundIPRanges", &c.exclude_outbound_ip_ranges, ranges(false)},
      {"includeInboundPorts", &c.include_inbound_ports, ports(true)},
      {"excludeInboundPorts", &c.exclude_inbound_ports, ports(false)},
      {"includeOutboundPorts", &c.include_outbound_ports, ports(false)},
      {"excludeOutboundPorts", &c.exclude_outbound_ports, ports(false)},
      {"excludeInterfaces", &c.exclude_interfaces, [](const std::string&) { return Status::Ok(); }},
  };
  for (auto& f : fields) {
    r.String(f.name, *f.value);
    Status s = f.check(*f.value);
    if (!s.ok()) r.errors().Add(r.Path(f.name), s.message());
  }
}

void ReadInjection(ObjectReader& r, InjectionSettings& inj) {
  std::string policy = inj.default_policy_enabled ? "enabled" : "disabled";
  r.String("defaultPolicy", policy);
  if (policy == "enabled") inj.default_policy_enabled = true;
  else if (policy == "disabled") inj.default_policy_enabled = false;
  else r.errors().Add(r.Path("defaultPolicy"), "\"" + policy + "\" is not one of enabled, disabled");
  r.String("proxyImage", inj.proxy_image);
  r.String("initImage", inj.init_image);
  r.String("imagePullPolicy", inj.image_pull_policy);
  if (inj.image_pull_policy != "Always" && inj.image_pull_policy != "IfNotPresent" && inj.image_pull_policy != "Never") {
    r.errors().Add(r.Path("imagePullPolicy"), "\"" + inj.image_pull_policy + "\" is not one of Always, IfNotPresent, Never");
  }
  r.Bool("nativeSidecars", inj.native_sidecars);
  r.Bool("cniMode", inj.cni_mode);
  r.Bool("holdApplicationUntilProxyStarts", inj.hold_application_until_proxy_starts);
  r.Bool("rewriteAppProbers", inj.rewrite_app_probers);
  r.Bool("metricsMerging", inj.metrics_merging);
  r.String("tokenAudience", inj.token_audience);
  r.String("proxyLogLevel", inj.proxy_log_level);
  static const std::set<std::string> kLevels = {"trace", "debug", "info", "warning", "warn", "error", "critical", "off"};
  if (!kLevels.count(inj.proxy_log_level)) {
    r.errors().Add(r.Path("proxyLogLevel"),
                   "\"" + inj.proxy_log_level + "\" is not one of trace, debug, info, warning, error, critical, off");
  }
  if (const json* res = r.Get("resources")) {
    ObjectReader rr(*res, r.Path("resources"), r.errors());
    ReadQuantities(rr.Get("requests"), rr.Path("requests"), inj.resources.requests, r.errors());
    ReadQuantities(rr.Get("limits"), rr.Path("limits"), inj.resources.limits, r.errors());
  }
  ReadSelectors(r.Get("neverInjectSelector"), r.Path("neverInjectSelector"), inj.never_inject_selector, r.errors());
  ReadSelectors(r.Get("alwaysInjectSelector"), r.Path("alwaysInjectSelector"), inj.always_inject_selector, r.errors());
  if (const json* ann = r.Get("injectedAnnotations")) {
    Labels m = ParseStringMap(*ann, r.Path("injectedAnnotations"), r.errors());
    inj.injected_annotations.insert(m.begin(), m.end());
  }
}

}  // namespace

Result<MeshConfig> ParseMeshConfig(const std::string& text) {
  auto doc = ParseYaml(text);
  if (!doc.ok()) return doc.status();
  MeshConfig mc;
  FieldErrors errors;
  {
    ObjectReader r(*doc, "", errors);
    r.String("revision", mc.revision);
    r.String("trustDomain", mc.trust_domain);
    r.String("meshId", mc.mesh_id);
    r.String("clusterId", mc.cluster_id);
    r.String("caAddress", mc.ca_address);
    r.String("discoveryAddress", mc.discovery_address);
    if (const json* inj = r.Get("injection")) {
      ObjectReader ir(*inj, "injection", errors);
      ReadInjection(ir, mc.injection);
    }
    if (const json* cap = r.Get("capture")) {
      ObjectReader cr(*cap, "capture", errors);
      ReadCapture(cr, mc.capture);
    }
  }
  if (mc.revision.empty()) errors.Add("revision", "must not be empty");
  if (mc.trust_domain.empty()) errors.Add("trustDomain", "must not be empty");
  if (mc.injection.proxy_image.empty()) errors.Add("injection.proxyImage", "must not be empty");
  if (mc.injection.init_image.empty()) errors.Add("injection.initImage", "must not be empty");
  if (!errors.empty()) return errors.ToStatus();
  return mc;
}

Result<MeshConfig> LoadMeshConfig(const std::string& path) {
  auto text = ReadFile(path);
  if (!text.ok()) return text.status();
  // The shipped ConfigMap itself (manifests/base/configmap-mesh.yaml) is accepted as well as the
  // mesh.yaml it holds, as mounted: a ConfigMap's data["mesh.yaml"] is the config.
  auto doc = ParseYaml(*text);
  if (doc.ok() && doc->is_object() && doc->value("kind", nlohmann::json()) == "ConfigMap") {
    const nlohmann::json data = doc->value("data", nlohmann::json::object());
    if (!data.is_object() || !data.contains("mesh.yaml") || !data["mesh.yaml"].is_string()) {
      return Status::Error(path + ": data[\"mesh.yaml\"]: a ConfigMap given as the mesh config must hold mesh.yaml");
    }
    auto mc = ParseMeshConfig(data["mesh.yaml"].get<std::string>());
    if (!mc.ok()) return mc.status().Context(path + ": data[\"mesh.yaml\"]");
    return mc;
  }
  auto mc = ParseMeshConfig(*text);
  if (!mc.ok()) return mc.status().Context(path);
  return mc;
}

}  // namespace tern
