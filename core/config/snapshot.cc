#include "core/config/snapshot.h"

#include <set>

#include "core/base/ascii.h"
#include "core/base/object_reader.h"
#include "core/net/ip_range.h"
#include "core/yaml/yaml_json.h"

namespace tern::config {

using nlohmann::json;

const char* ProtocolName(Protocol p) {
  switch (p) {
    case Protocol::kSniff: return "sniff";
    case Protocol::kHttp: return "http";
    case Protocol::kHttp2: return "http2";
    case Protocol::kGrpc: return "grpc";
    case Protocol::kTcp: return "tcp";
    case Protocol::kTls: return "tls";
    case Protocol::kHttps: return "https";
  }
  return "sniff";
}

Protocol DetectProtocol(const std::string& port_name, const std::string& app_protocol) {
  auto of = [](std::string_view name) -> std::optional<Protocol> {
    std::string p = AsciiLower(name);
    if (p == "http") return Protocol::kHttp;
    if (p == "http2" || p == "kubernetes.io/h2c") return Protocol::kHttp2;
    if (p == "grpc" || p == "grpc-web") return Protocol::kGrpc;
    if (p == "tcp" || p == "mongo" || p == "mysql" || p == "redis") return Protocol::kTcp;
    if (p == "tls") return Protocol::kTls;
    if (p == "https") return Protocol::kHttps;
    return std::nullopt;
  };
  if (!app_protocol.empty()) {
    if (auto p = of(app_protocol)) return *p;
  }
  if (auto p = of(port_name.substr(0, port_name.find('-')))) return *p;
  return Protocol::kSniff;
}

namespace {

uint32_t ReadPortNumber(ObjectReader& r, const std::string& key, bool required) {
  int64_t n = 0;
  if (r.Int(key, 1, 65535, n)) return static_cast<uint32_t>(n);
  if (required && !r.Get(key)) r.errors().Add(r.Path(key), "required");
  return 0;
}

Service ReadService(const json& v, const std::string& path, FieldErrors& errors) {
  ObjectReader r(v, path, errors);
  Service s;
  if (!r.String("hostname", s.hostname) || s.hostname.empty()) errors.Add(r.Path("hostname"), "required");
  r.String("name", s.name);
  r.String("namespace", s.namespace_);
  // name and namespace default from the hostname's first two labels (name.namespace.svc....).
  if (s.name.empty()) s.name = s.hostname.substr(0, s.hostname.find('.'));
  if (s.namespace_.empty()) {
    size_t a = s.hostname.find('.');
    if (a != std::string::npos) s.namespace_ = s.hostname.substr(a + 1, s.hostname.find('.', a + 1) - a - 1);
  }
  r.StringList("clusterIPs", s.cluster_ips);
  for (size_t i = 0; i < s.cluster_ips.size(); ++i) {
    if (!IsIpAddress(s.cluster_ips[i])) {
      errors.Add(r.Path("clusterIPs") + "[" + std::to_string(i) + "]", "\"" + s.cluster_ips[i] + "\" is not an IP address");
    }
  }
  std::set<uint32_t> numbers;
  std::set<std::string> names;
  r.Array("ports", [&](const json& pv, const std::string& p) {
    ObjectReader pr(pv, p, errors);
    ServicePort port;
    pr.String("name", port.name);
    port.port = ReadPortNumber(pr, "port", true);
    port.target_port = ReadPortNumber(pr, "targetPort", false);
    pr.String("appProtocol", port.app_protocol);
    std::string declared;
    if (pr.Enum("protocol", {"TCP", "UDP", "SCTP"}, declared) && declared != "TCP") {
      errors.Add(pr.Path("protocol"), declared + " is not proxied (TCP only)");
    }
    port.protocol = DetectProtocol(port.name, port.app_protocol);
    if (port.port && !numbers.insert(port.port).second) errors.Add(pr.Path("port"), "port " + std::to_string(port.port) + " is listed twice");
    if (!port.name.empty() && !names.insert(port.name).second) errors.Add(pr.Path("name"), "\"" + port.name + "\" is listed twice");
    s.ports.push_back(std::move(port));
  });
  r.StringList("exportTo", s.export_to);
  return s;
}

Endpoint ReadEndpoint(const json& v, const std::string& path, FieldErrors& errors) {
  ObjectReader r(v, path, errors);
  Endpoint e;
  if (!r.String("service", e.service) || e.service.empty()) errors.Add(r.Path("service"), "required");
  if (!r.String("address", e.address) || !IsIpAddress(e.address)) errors.Add(r.Path("address"), "required: an IP address");
  if (const json* ports = r.Get("ports")) {
    ObjectReader pr(*ports, r.Path("ports"), errors);
    if (ports->is_object()) {
      for (auto it = ports->begin(); it != ports->end(); ++it) {
        uint32_t n = ReadPortNumber(pr, it.key(), true);
        if (n) e.ports[it.key()] = n;
      }
    }
  }
  r.StringMap("labels", e.labels);
  r.String("serviceAccount", e.service_account);
  r.Bool("ready", e.ready);
  return e;
}

}  // namespace

Result<std::shared_ptr<const Snapshot>> ParseSnapshotJson(const json& doc) {
  auto snap = std::make_shared<Snapshot>();
  FieldErrors errors;
  {
    ObjectReader r(doc, "", errors);
    std::string api_version, kind;
    r.String("apiVersion", api_version);
    r.String("kind", kind);
    if (api_version != "tern.dev/v1alpha1") errors.Add("apiVersion", "must be tern.dev/v1alpha1");
    if (kind != "ProxySnapshot") errors.Add("kind", "must be ProxySnapshot");
    r.String("version", snap->version);
    if (const json* mesh = r.Get("mesh")) {
      ObjectReader mr(*mesh, "mesh", errors);
      mr.Enum("outboundTrafficPolicy", {"ALLOW_ANY", "REGISTRY_ONLY"}, snap->mesh.outbound_traffic_policy);
      mr.String("trustDomain", snap->mesh.trust_domain);
    }
    if (const json* w = r.Get("workload")) {
      ObjectReader wr(*w, "workload", errors);
      wr.String("name", snap->workload.name);
      wr.String("namespace", snap->workload.namespace_);
      wr.String("serviceAccount", snap->workload.service_account);
      wr.StringMap("labels", snap->workload.labels);
      wr.StringMap("annotations", snap->workload.annotations);
    }
    std::set<std::string> hostnames;
    std::map<std::string, std::set<std::string>> port_names;  // hostname -> its port names
    r.Array("services", [&](const json& v, const std::string& p) {
      Service s = ReadService(v, p, errors);
      if (!s.hostname.empty() && !hostnames.insert(s.hostname).second) {
        errors.Add(p + ".hostname", "\"" + s.hostname + "\" is listed twice");
      }
      for (const auto& port : s.ports) port_names[s.hostname].insert(port.name);
      snap->services.push_back(std::move(s));
    });
    r.Array("endpoints", [&](const json& v, const std::string& p) {
      Endpoint e = ReadEndpoint(v, p, errors);
      if (!e.service.empty() && !hostnames.count(e.service)) {
        errors.Add(p + ".service", "\"" + e.service + "\" is not a service of this snapshot");
      } else {
        for (const auto& [name, number] : e.ports) {
          if (!port_names[e.service].count(name)) {
            errors.Add(p + ".ports." + name, "service " + e.service + " has no port named \"" + name + "\"");
          }
        }
      }
      snap->endpoints.push_back(std::move(e));
    });
    r.Array("resources", [&](const json& v, const std::string& p) {
      auto res = istio::ParseResource(v);
      if (!res.ok()) errors.Add(p, res.status().message());
      else snap->resources.push_back(std::move(*res));
    });
  }
  if (!errors.empty()) return Status::Error(errors.ToString());
  return std::shared_ptr<const Snapshot>(std::move(snap));
}

Result<std::shared_ptr<const Snapshot>> ParseSnapshot(const std::string& text) {
  auto doc = ParseYaml(text);  // JSON is YAML
  if (!doc.ok()) return doc.status();
  return ParseSnapshotJson(*doc);
}

std::shared_ptr<const Snapshot> EmptySnapshot() {
  static const std::shared_ptr<const Snapshot> empty = std::make_shared<Snapshot>();
  return empty;
}

}  // namespace tern::config
