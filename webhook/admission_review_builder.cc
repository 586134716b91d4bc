#include "core/base/json_fields.h"
#include "webhook/admission_review_builder.h"

#include <functional>

namespace tern::webhook {

using nlohmann::json;

json PodFromWorkload(const json& object, const std::string& namespace_name) {
  std::string kind = StringField(object, "kind");
  if (kind == "Pod") return object;
  json tmpl = kind == "CronJob" ? object["spec"]["jobTemplate"]["spec"]["template"] : object["spec"]["template"];
  std::string name = StringField(object["metadata"], "name", "workload");
  // A stable stand-in for the controller's template hash.
  std::string hash = std::to_string(std::hash<std::string>{}(tmpl.dump()) % 10000000000ULL);
  json pod = {{"apiVersion", "v1"}, {"kind", "Pod"}, {"metadata", tmpl.value("metadata", json::object())},
              {"spec", tmpl["spec"]}};
  json& md = pod["metadata"];
  md["namespace"] = namespace_name;
  std::string owner_kind = kind, owner_api = StringField(object, "apiVersion", "apps/v1"), owner_name = name;
  if (kind == "Deployment") {
    owner_kind = "ReplicaSet";
    owner_name = name + "-" + hash;
    md["labels"]["pod-template-hash"] = hash;
  } else if (kind == "CronJob") {
    owner_kind = "Job";
    owner_name = name + "-29000000";
  }
  md["generateName"] = owner_name + "-";
  md["ownerReferences"] = json::array({{{"apiVersion", owner_api},
                                        {"kind", owner_kind},
                                        {"name", owner_name},
                                        {"uid", "00000000-0000-4000-8000-" + hash.substr(0, 10) + "00"},
                                        {"controller", true},
                                        {"blockOwnerDeletion", true}}});
  return pod;
}

json PodCreateReview(const json& pod, const std::string& namespace_name, const std::string& uid, bool dry_run,
                     const std::string& api_version) {
  json gvk = {{"group", ""}, {"version", "v1"}, {"kind", "Pod"}};
  json gvr = {{"group", ""}, {"version", "v1"}, {"resource", "pods"}};
  json request = {{"uid", uid},
                  {"kind", gvk},
                  {"resource", gvr},
                  {"requestKind", gvk},
                  {"requestResource", gvr},
                  {"namespace", namespace_name},
                  {"operation", "CREATE"},
                  {"userInfo",
                   {{"username", "system:serviceaccount:kube-system:replicaset-controller"},
                    {"uid", "5b2e3c1a-0000-4000-8000-000000000001"},
                    {"groups", {"system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"}}}},
                  {"object", pod},
                  {"oldObject", nullptr},
                  {"dryRun", dry_run},
                  {"options", {{"kind", "CreateOptions"}, {"apiVersion", "meta.k8s.io/v1"}}}};
  std::string name = pod.contains("metadata") ? StringField(pod["metadata"], "name") : "";
  if (!name.empty()) request["name"] = name;
  return {{"kind", "AdmissionReview"}, {"apiVersion", api_version}, {"request", request}};
}

}  // namespace tern::webhook
