#include "core/base/json_fields.h"
#include "webhook/kube_inject.h"

namespace tern::webhook {

using nlohmann::json;

namespace {

// Where a workload kind keeps its pod template, as a JSON pointer.
const char* TemplatePointer(const std::string& kind) {
  if (kind == "Deployment" || kind == "StatefulSet" || kind == "DaemonSet" || kind == "ReplicaSet" ||
      kind == "Job" || kind == "ReplicationController") {
    return "/spec/template";
  }
  if (kind == "CronJob") return "/spec/jobTemplate/spec/template";
  return nullptr;
}

}  // namespace

Result<std::vector<json>> KubeInject(const std::vector<json>& documents, const MeshConfig& mesh,
                                     std::vector<KubeInjectReport>* report) {
  std::vector<json> out;
  for (size_t i = 0; i < documents.size(); ++i) {
    const json& doc = documents[i];
    std::string kind = doc.is_object() ? StringField(doc, "kind") : "";
    std::string name = doc.is_object() && doc.contains("metadata") && doc["metadata"].is_object()
                           ? StringField(doc["metadata"], "name")
                           : "";
    std::string ns = doc.is_object() && doc.contains("metadata") && doc["metadata"].is_object()
                         ? StringField(doc["metadata"], "namespace", "default")
                         : "default";
    std::string label = kind + "/" + name;
    const char* pointer = TemplatePointer(kind);
    if (kind != "Pod" && !pointer) {
      out.push_back(doc);
      continue;
    }
    InjectionRequest request{ns, std::nullopt, std::nullopt};
    json pod;
    if (kind == "Pod") {
      pod = doc;
    } else {
      json::json_pointer ptr(pointer);
      if (!doc.contains(ptr) || !doc[ptr].is_object()) {
        return Status::Error("document " + std::to_string(i + 1) + " (" + label + "): " + std::string(pointer + 1) +
                             " is missing or not an object");
      }
      const json& tmpl = doc[ptr];
      pod = {{"apiVersion", "v1"}, {"kind", "Pod"}, {"metadata", tmpl.value("metadata", json::object())},
             {"spec", tmpl.contains("spec") ? tmpl["spec"] : json()}};
      pod["metadata"]["namespace"] = ns;
      request.workload = WorkloadRef{StringField(doc, "apiVersion"), kind, name};
    }
    InjectionResult r = InjectPod(pod, request, mesh);
    if (report) report->push_back({label, r.outcome, r.reason});
    if (r.outcome == Outcome::kRejected) {
      return Status::Error("document " + std::to_string(i + 1) + " (" + label + "): " + r.reason);
    }
    if (r.outcome == Outcome::kSkipped) {
      out.push_back(doc);
      continue;
    }
    if (kind == "Pod") {
      out.push_back(std::move(r.pod));
      continue;
    }
    json injected = doc;
    json& tmpl = injected[json::json_pointer(pointer)];
    r.pod["metadata"].erase("namespace");
    tmpl["metadata"] = r.pod["metadata"];
    tmpl["spec"] = r.pod["spec"];
    out.push_back(std::move(injected));
  }
  return out;
}

}  // namespace tern::webhook
