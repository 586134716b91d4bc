#include "control-plane/push/snapshot_builder.h"

#include <map>

namespace tern::control_plane {

using nlohmann::json;

namespace {

bool Selects(const json& selector, const json& labels) {
  if (!selector.is_object() || selector.empty()) return false;  // no selector: no endpoints from pods
  for (const auto& [k, v] : selector.items()) {
    if (!labels.contains(k) || labels[k] != v) return false;
  }
  return true;
}

// A named targetPort: the pod's container port of that name.
int NamedPort(const json& pod, const std::string& name) {
  for (const auto& c : pod.value("spec", json::object()).value("containers", json::array())) {
    for (const auto& p : c.value("ports", json::array())) {
      if (p.value("name", "") == name && p.contains("containerPort") && p["containerPort"].is_number_integer()) {
        return p["containerPort"];
      }
    }
  }
  return 0;
}

bool PodReady(const json& pod) {
  const json status = pod.value("status", json::object());
  if (status.value("phase", "Running") != "Running") return false;
  for (const auto& c : status.value("conditions", json::array())) {
    if (c.value("type", "") == "Ready") return c.value("status", "True") == "True";
  }
  return true;
}

// Pods by "namespace\0key=value" of each of their labels: a Service's endpoints are the pods
// under its selector's first label that match the rest, found without scanning every pod for
// every Service (10,000 pods x 1,000 Services: over a minute a snapshot).
std::map<std::string, std::vector<const ModelObject*>> PodsByLabel(const Model& model) {
  std::map<std::string, std::vector<const ModelObject*>> index;
  for (const auto& pod : model.pods) {
    const json& meta = pod.doc["metadata"];
    auto labels = meta.find("labels");
    if (labels == meta.end() || !labels->is_object()) continue;
    for (const auto& [k, v] : labels->items()) {
      if (v.is_string()) index[pod.namespace_ + '\0' + k + '=' + v.get<std::string>()].push_back(&pod);
    }
  }
  return index;
}

json CommonPart(const Model& model, const MeshConfig& mesh, const std::string& cluster_domain) {
  json services = json::array(), endpoints = json::array(), resources = json::array();
  const auto pods_by_label = PodsByLabel(model);
  for (const auto& [svc, ip] : ClusterIps(model)) {
    const json spec = svc->doc["spec"];
    const std::string hostname = svc->name + "." + svc->namespace_ + ".svc." + cluster_domain;
    json ports = json::array();
    for (const auto& p : spec.value("ports", json::array())) {
      json port = {{"name", p.value("name", "")}, {"port", p["port"]}};
      if (p.contains("targetPort") && p["targetPort"].is_number_integer()) port["targetPort"] = p["targetPort"];
      if (p.contains("appProtocol")) port["appProtocol"] = p["appProtocol"];
      if (p.contains("protocol")) port["protocol"] = p["protocol"];
      ports.push_back(port);
    }
    json service = {{"hostname", hostname}, {"namespace", svc->namespace_}, {"clusterIPs", {ip}}, {"ports", ports}};
    if (svc->doc["metadata"].contains("annotations") && svc->doc["metadata"]["annotations"].contains("networking.istio.io/exportTo")) {
      std::string to = svc->doc["metadata"]["annotations"]["networking.istio.io/exportTo"];
      json list = json::array();
      for (size_t start = 0; start <= to.size();) {
        size_t comma = to.find(',', start);
        std::string item = to.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (!item.empty()) list.push_back(item);
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
      service["exportTo"] = list;
    }
    services.push_back(service);
    const json selector = spec.value("selector", json::object());
    if (!selector.is_object() || selector.empty() || !selector.begin()->is_string()) continue;
    auto candidates = pods_by_label.find(svc->namespace_ + '\0' + selector.begin().key() + '=' +
                                         selector.begin()->get<std::string>());
    if (candidates == pods_by_label.end()) continue;
    for (const ModelObject* candidate : candidates->second) {
      const ModelObject& pod = *candidate;
      const json labels = pod.doc["metadata"].value("labels", json::object());
      const std::string address = pod.doc.value("status", json::object()).value("podIP", "");
      if (address.empty() || !Selects(selector, labels)) continue;
      json by_name = json::object();
      for (const auto& p : spec.value("ports", json::array())) {
        int target = p["port"];
        if (p.contains("targetPort")) target = p["targetPort"].is_number_integer() ? p["targetPort"].get<int>()
                                                                                   : NamedPort(pod.doc, p["targetPort"]);
        if (target > 0) by_name[p.value("name", "")] = target;
      }
      endpoints.push_back({{"service", hostname},
                           {"address", address},
                           {"ports", by_name},
                           {"labels", labels},
                           {"serviceAccount", pod.doc.value("spec", json::object()).value("serviceAccountName", "default")},
                           {"ready", PodReady(pod.doc)}});
    }
  }
  for (const auto& r : model.resources) {
    if (r.kind == "VirtualService" || r.kind == "DestinationRule") resources.push_back(r.doc);
  }
  return {{"apiVersion", "tern.dev/v1alpha1"},
          {"kind", "ProxySnapshot"},
          {"mesh", {{"outboundTrafficPolicy", "ALLOW_ANY"}, {"trustDomain", mesh.trust_domain}}},
          {"services", std::move(services)},
          {"endpoints", std::move(endpoints)},
          {"resources", std::move(resources)}};
}

}  // namespace

json WorkloadOf(const Model& model, const ProxyIdentity& proxy) {
  json workload = {{"name", proxy.pod}, {"namespace", proxy.namespace_}};
  for (const auto& pod : model.pods) {
    if (pod.name != proxy.pod || pod.namespace_ != proxy.namespace_) continue;
    const json& meta = pod.doc["metadata"];
    if (meta.contains("labels")) workload["labels"] = meta["labels"];
    workload["serviceAccount"] = pod.doc.value("spec", json::object()).value("serviceAccountName", "default");
  }
  return workload;
}

json BuildProxySnapshot(const Model& model, const MeshConfig& mesh, const ProxyIdentity& proxy,
                        const std::string& cluster_domain) {
  json snapshot = CommonPart(model, mesh, cluster_domain);
  snapshot["workload"] = WorkloadOf(model, proxy);
  return snapshot;
}

SharedSnapshot BuildSharedSnapshot(const Model& model, const MeshConfig& mesh, const std::string& cluster_domain) {
  std::string text = CommonPart(model, mesh, cluster_domain).dump();
  text.pop_back();  // its closing brace: the version and the workload follow
  return {std::move(text)};
}

std::string SnapshotText(const SharedSnapshot& shared, const json& workload, const std::string& version) {
  std::string out = shared.prefix;
  if (!version.empty()) out += ",\"version\":" + json(version).dump();
  out += ",\"workload\":" + workload.dump() + "}";
  return out;
}

}  // namespace tern::control_plane
