#include "control-plane/discovery/model.h"

#include <algorithm>
#include <map>
#include <set>

#include "core/istio/resource.h"

namespace tern::control_plane {

using nlohmann::json;

namespace {

bool IsDnsLabel(const std::string& s) {
  if (s.empty() || s.size() > 253) return false;
  for (char c : s) {
    if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '.')) {
      return false;
    }
  }
  return std::isalnum(static_cast<unsigned char>(s.front())) && std::isalnum(static_cast<unsigned char>(s.back()));
}

// A Service's fields the snapshot needs, checked; "" when fine, else "<path>: <why>".
std::string CheckService(const json& doc) {
  const json spec = doc.value("spec", json::object());
  if (!spec.is_object()) return "spec: must be an object";
  const json ports = spec.value("ports", json::array());
  if (!ports.is_array()) return "spec.ports: must be a list";
  for (size_t i = 0; i < ports.size(); ++i) {
    const json& p = ports[i];
    const std::string at = "spec.ports[" + std::to_string(i) + "]";
    if (!p.is_object()) return at + ": must be an object";
    if (!p.contains("port") || !p["port"].is_number_integer() || p["port"] < 1 || p["port"] > 65535) {
      return at + ".port: must be a port from 1 to 65535";
    }
    if (p.contains("name") && !p["name"].is_string()) return at + ".name: must be a string";
    if (p.contains("targetPort") && !(p["targetPort"].is_string() || (p["targetPort"].is_number_integer() &&
                                                                       p["targetPort"] >= 1 && p["targetPort"] <= 65535))) {
      return at + ".targetPort: must be a port from 1 to 65535 or a port name";
    }
    if (ports.size() > 1 && p.value("name", "").empty()) return at + ".name: required when a Service has several ports";
  }
  if (spec.contains("selector") && !spec["selector"].is_object()) return "spec.selector: must be a map";
  return "";
}

std::string CheckPod(const json& doc) {
  const json status = doc.value("status", json::object());
  if (!status.is_object()) return "status: must be an object";
  if (status.contains("podIP") && !status["podIP"].is_string()) return "status.podIP: must be a string";
  const json labels = doc["metadata"].value("labels", json::object());
  if (!labels.is_object()) return "metadata.labels: must be a map";
  for (const auto& [k, v] : labels.items()) {
    if (!v.is_string()) return "metadata.labels[\"" + k + "\"]: must be a string";
  }
  return "";
}

}  // namespace

std::shared_ptr<const Model> BuildModel(const std::vector<SourceDocument>& documents, const std::string& default_namespace,
                                        uint64_t generation) {
  auto model = std::make_shared<Model>();
  model->generation = generation;
  for (const auto& [origin, original] : documents) {
    if (original.is_null()) continue;  // an empty document ("---" at the end)
    if (!original.is_object()) {
      model->problems.push_back(origin + ": not an object");
      continue;
    }
    json doc = original;
    const std::string kind = doc.value("kind", json("")).is_string() ? doc.value("kind", "") : "";
    if (kind == "List" && doc.contains("items") && doc["items"].is_array()) {
      std::vector<SourceDocument> items;
      for (size_t i = 0; i < doc["items"].size(); ++i) items.push_back({origin + ".items[" + std::to_string(i) + "]", doc["items"][i]});
      auto inner = BuildModel(items, default_namespace, generation);
      for (std::vector<ModelObject> Model::*list : {&Model::services, &Model::pods, &Model::resources, &Model::ignored}) {
        auto& into = (*model).*list;
        into.insert(into.end(), ((*inner).*list).begin(), ((*inner).*list).end());
      }
      model->problems.insert(model->problems.end(), inner->problems.begin(), inner->problems.end());
      continue;
    }
    if (!doc.contains("metadata") || !doc["metadata"].is_object()) {
      model->problems.push_back(origin + " " + (kind.empty() ? "object" : kind) + ": metadata: is required");
      continue;
    }
    json& meta = doc["metadata"];
    std::string name = meta.value("name", json("")).is_string() ? meta.value("name", "") : "";
    if (!meta.contains("namespace") || !meta["namespace"].is_string() || meta["namespace"] == "") meta["namespace"] = default_namespace;
    std::string ns = meta["namespace"];
    const std::string what = origin + " " + (kind.empty() ? "object" : kind) + " " + ns + "/" + name;
    if (kind.empty()) {
      model->problems.push_back(what + ": kind: is required");
      continue;
    }
    if (!IsDnsLabel(name)) {
      model->problems.push_back(what + ": metadata.name: \"" + name + "\" is not a DNS name");
      continue;
    }
    ModelObject object{kind, ns, name, origin, doc};
    std::string problem;
    if (kind == "Service") {
      problem = CheckService(doc);
      if (problem.empty()) model->services.push_back(std::move(object));
    } else if (kind == "Pod") {
      problem = CheckPod(doc);
      if (problem.empty()) model->pods.push_back(std::move(object));
    } else if (kind == "VirtualService" || kind == "DestinationRule" || kind == "AuthorizationPolicy" || kind == "PeerAuthentication") {
      if (kind == "VirtualService" || kind == "DestinationRule") {
        // The one parser the proxy uses: what it would refuse is refused here, with its path.
        auto parsed = istio::ParseResource(doc);
        if (!parsed.ok()) problem = parsed.status().message();
      } else if (!doc.contains("spec") || !doc["spec"].is_object()) {
        problem = "spec: must be an object";
      }
      if (problem.empty()) model->resources.push_back(std::move(object));
    } else {
      model->ignored.push_back(std::move(object));
    }
    if (!problem.empty()) model->problems.push_back(what + ": " + problem);
  }
  return model;
}

std::vector<std::pair<const ModelObject*, std::string>> ClusterIps(const Model& model) {
  std::vector<std::pair<const ModelObject*, std::string>> out;
  std::set<std::string> taken;
  std::vector<const ModelObject*> unassigned;
  for (const auto& s : model.services) {
    std::string ip = s.doc["spec"].value("clusterIP", json("")).is_string() ? s.doc["spec"].value("clusterIP", "") : "";
    if (!ip.empty() && ip != "None") {
      taken.insert(ip);
      out.emplace_back(&s, ip);
    } else if (ip != "None") {
      unassigned.push_back(&s);
    }
  }
  std::sort(unassigned.begin(), unassigned.end(), [](const ModelObject* a, const ModelObject* b) {
    return std::tie(a->namespace_, a->name) < std::tie(b->namespace_, b->name);
  });
  for (const ModelObject* s : unassigned) {
    uint32_t h = 2166136261u;  // FNV-1a of namespace/name
    for (char c : s->namespace_ + "/" + s->name) h = (h ^ static_cast<uint8_t>(c)) * 16777619u;
    for (uint32_t probe = 0; probe < 65534; ++probe) {
      uint32_t host = (h + probe) % 65534 + 1;  // 10.96.0.1 - 10.96.255.254
      std::string ip = "10.96." + std::to_string(host >> 8) + "." + std::to_string(host & 0xff);
      if (taken.insert(ip).second) {
        out.emplace_back(s, ip);
        break;
      }
    }
  }
  return out;
}

}  // namespace tern::control_plane
