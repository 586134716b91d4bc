#include "core/base/json_fields.h"
#include "webhook/injector.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <cmath>
#include <set>

#include "core/annotations/keys.h"
#include "core/annotations/sidecar_annotations.h"
#include "core/kube/quantity.h"
#include "webhook/decision.h"
#include "webhook/pod_shape.h"
#include "webhook/probes.h"
#include "webhook/sidecar_template.h"

namespace tern::webhook {

using nlohmann::json;

const char* OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kInjected: return "injected";
    case Outcome::kSkipped: return "skipped";
    case Outcome::kRejected: return "rejected";
  }
  return "unknown";
}

namespace {

json& Array(json& obj, const char* key) {
  if (!obj.contains(key) || !obj[key].is_array()) obj[key] = json::array();
  return obj[key];
}

std::string EnvValue(const json& container, const char* name) {
  if (!container.contains("env") || !container["env"].is_array()) return "";
  for (const auto& e : container["env"]) {
    if (e.is_object() && StringField(e, "name") == name && e.contains("value") && e["value"].is_string()) {
      return e["value"].get<std::string>();
    }
  }
  return "";
}

void RemoveNamed(json& list, const std::set<std::string>& names, json* removed) {
  if (!list.is_array()) return;
  json kept = json::array();
  for (auto& item : list) {
    bool drop = item.is_object() && item.contains("name") && item["name"].is_string() &&
                names.count(item["name"].get<std::string>());
    if (drop && removed) removed->push_back(item);
    if (!drop) kept.push_back(std::move(item));
  }
  list = std::move(kept);
}

std::set<std::string> NameSet(const json& v) {
  std::set<std::string> out;
  if (v.is_array()) {
    for (const auto& n : v) {
      if (n.is_string()) out.insert(n.get<std::string>());
    }
  }
  return out;
}

// Containers a user declares under the injected names (istio-proxy, istio-init) are overrides:
// their fields are merged over the template, as Istio's proxy override does. They are taken out
// of the pod before injection and kept verbatim in proxy.istio.io/overrides, so a later
// re-injection starts from them again.
constexpr const char* kOverridesAnnotation = "proxy.istio.io/overrides";

json TakeOverrides(json& spec) {
  json overrides = json::object();
  for (const char* list : {"containers", "initContainers"}) {
    if (!spec.contains(list)) continue;
    json taken = json::array();
    RemoveNamed(spec[list], {kProxyContainerName, kInitContainerName}, &taken);
    if (!taken.empty()) overrides[list] = taken;
  }
  if (spec.contains("initContainers") && spec["initContainers"].empty()) spec.erase("initContainers");
  return overrides;
}

const json* OverrideFor(const json& overrides, const char* name) {
  for (const char* list : {"containers", "initContainers"}) {
    if (!overrides.contains(list)) continue;
    for (const auto& c : overrides[list]) {
      if (c["name"] == name) return &c;
    }
  }
  return nullptr;
}

// Strategic-merge-like: maps merge key by key, keyed lists merge by their key, anything else
// (scalars, args, command) is replaced. `image: auto` keeps the template's image.
void MergeOverride(json& base, const json& over) {
  static const std::map<std::string, std::string> kListKeys = {
      {"env", "name"}, {"ports", "containerPort"}, {"volumeMounts", "mountPath"}};
  for (auto it = over.begin(); it != over.end(); ++it) {
    const std::string& key = it.key();
    const json& value = it.value();
    if (key == "name" || (key == "image" && value == "auto")) continue;
    auto list_key = kListKeys.find(key);
    if (value.is_object() && base.contains(key) && base[key].is_object()) {
      MergeOverride(base[key], value);
    } else if (list_key != kListKeys.end() && value.is_array() && base.contains(key) && base[key].is_array()) {
      for (const auto& item : value) {
        bool replaced = false;
        for (auto& existing : base[key]) {
          if (item.is_object() && existing.is_object() && item.contains(list_key->second) &&
              existing.value(list_key->second, json()) == item[list_key->second]) {
            existing = item;
            replaced = true;
          }
        }
        if (!replaced) base[key].push_back(item);
      }
    } else {
      base[key] = value;
    }
  }
}

// Undoes an earlier injection recorded in sidecar.istio.io/status, so that injecting again gives
// the same pod (reinvocation, or a pod re-submitted after `ternctl kube-inject`).
Status StripPreviousInjection(json& pod) {
  json& annotations = pod["metadata"]["annotations"];
  auto status = json::parse(annotations[keys::kStatusAnnotation].get<std::string>(), nullptr, false);
  if (status.is_discarded() || !status.is_object()) {
    return Status::Error(AnnotationPath(keys::kStatusAnnotation) + ": is not the JSON object an injector writes");
  }
  json& spec = pod["spec"];
  json removed = json::array();
  if (spec.contains("initContainers")) RemoveNamed(spec["initContainers"], NameSet(status["initContainers"]), &removed);
  if (spec.contains("containers")) RemoveNamed(spec["containers"], NameSet(status["containers"]), &removed);
  if (spec.contains("volumes")) RemoveNamed(spec["volumes"], NameSet(status["volumes"]), nullptr);
  for (const char* key : {"initContainers", "volumes"}) {
    if (spec.contains(key) && spec[key].empty()) spec.erase(key);
  }
  for (const auto& c : removed) {
    if (StringField(c, "name") != kProxyContainerName) continue;
    std::string probers = EnvValue(c, "ISTIO_KUBE_APP_PROBERS");
    if (!probers.empty()) {
      int status_port = kDefaultStatusPort;
      auto args = c.value("args", json::array());
      for (size_t i = 0; i + 1 < args.size(); ++i) {
        if (args[i] == "--status-port" && args[i + 1].is_string()) {
          const std::string& v = args[i + 1].get_ref<const std::string&>();
          std::from_chars(v.data(), v.data() + v.size(), status_port);  // unparseable: keep 15020
        }
      }
      RestoreAppProbes(spec["containers"], json::parse(probers, nullptr, false), status_port);
      if (spec.contains("initContainers")) {
        RestoreAppProbes(spec["initContainers"], json::parse(probers, nullptr, false), status_port);
      }
    }
    // Only scrape settings this injector wrote are undone; an app's `scrape: "false"` stays.
    bool merged = StringField(annotations, keys::kPrometheusScrape) == "true" &&
                  StringField(annotations, keys::kPrometheusPath) == "/stats/prometheus";
    if (merged) {
      for (const char* key : {keys::kPrometheusScrape, keys::kPrometheusPort, keys::kPrometheusPath}) {
        annotations.erase(key);
      }
    }
    auto original = json::parse(EnvValue(c, "ISTIO_PROMETHEUS_ANNOTATIONS"), nullptr, false);
    if (original.is_object()) {
      for (auto it = original.begin(); it != original.end(); ++it) {
        annotations[std::string("prometheus.io/") + it.key()] = it.value();
      }
    }
  }
  annotations.erase(keys::kStatusAnnotation);
  if (annotations.contains(kOverridesAnnotation)) {
    auto overrides = json::parse(annotations[kOverridesAnnotation].get<std::string>(), nullptr, false);
    if (overrides.is_discarded() || !overrides.is_object()) {
      return Status::Error(AnnotationPath(kOverridesAnnotation) + ": is not the JSON object an injector writes");
    }
    for (const char* list : {"containers", "initContainers"}) {
      if (!overrides.contains(list)) continue;
      json& target = Array(spec, list);
      for (const auto& c : overrides[list]) target.push_back(c);
    }
    annotations.erase(kOverridesAnnotation);
  }
  return Status::Ok();
}

// The pod's owner as the proxy reports it: Deployment for a ReplicaSet with a template hash.
WorkloadRef OwnerOf(const json& pod) {
  const json& md = pod["metadata"];
  std::string pod_name = StringField(md, "name");
  if (pod_name.empty()) {
    pod_name = StringField(md, "generateName");
    if (!pod_name.empty() && pod_name.back() == '-') pod_name.pop_back();
  }
  WorkloadRef ref{"v1", "Pod", pod_name};
  if (md.contains("ownerReferences") && md["ownerReferences"].is_array()) {
    for (const auto& o : md["ownerReferences"]) {
      if (!o.is_object() || !BoolField(o, "controller", false)) continue;
      ref = {StringField(o, "apiVersion"), StringField(o, "kind"), StringField(o, "name")};
      Labels labels = PodLabels(pod);
      auto hash = labels.find("pod-template-hash");
      std::string suffix = hash == labels.end() ? "" : "-" + hash->second;
      if (ref.kind == "ReplicaSet" && !suffix.empty() && ref.name.size() > suffix.size() &&
          ref.name.compare(ref.name.size() - suffix.size(), suffix.size(), suffix) == 0) {
        ref = {"apps/v1", "Deployment", ref.name.substr(0, ref.name.size() - suffix.size())};
      }
    }
  }
  return ref;
}

std::string OwnerUri(const WorkloadRef& w, const std::string& ns) {
  std::string plural = w.kind;
  std::transform(plural.begin(), plural.end(), plural.begin(), ::tolower);
  plural += "s";
  std::string group_path = w.api_version.find('/') == std::string::npos ? "api/" + w.api_version : "apis/" + w.api_version;
  return "kubernetes://" + group_path + "/namespaces/" + ns + "/" + plural + "/" + w.name;
}

// Sidecar resources: annotations replace the defaults wholesale (Istio's rule), so a pod that
// sets only proxyCPU gets exactly that request and no inherited limit.
json ResolveResources(const SidecarAnnotations& a, const MeshConfig& mesh, FieldErrors& errors) {
  bool any = a.proxy_cpu || a.proxy_memory || a.proxy_cpu_limit || a.proxy_memory_limit;
  json r = json::object();
  if (!any) {
    for (const auto& [k, v] : mesh.injection.resources.requests) r["requests"][k] = v;
    for (const auto& [k, v] : mesh.injection.resources.limits) r["limits"][k] = v;
    return r;
  }
  if (a.proxy_cpu) r["requests"]["cpu"] = *a.proxy_cpu;
  if (a.proxy_memory) r["requests"]["memory"] = *a.proxy_memory;
  if (a.proxy_cpu_limit) r["limits"]["cpu"] = *a.proxy_cpu_limit;
  if (a.proxy_memory_limit) r["limits"]["memory"] = *a.proxy_memory_limit;
  auto check = [&](const std::optional<std::string>& req, const std::optional<std::string>& lim, const char* key) {
    if (!req || !lim) return;
    auto rq = ParseQuantity(*req), lq = ParseQuantity(*lim);
    if (rq.ok() && lq.ok() && *rq > *lq) {
      errors.Add(AnnotationPath(key), "request " + *req + " exceeds the limit " + *lim);
    }
  };
  check(a.proxy_cpu, a.proxy_cpu_limit, keys::kProxyCpu);
  check(a.proxy_memory, a.proxy_memory_limit, keys::kProxyMemory);
  return r;
}

// Worker threads: ProxyConfig.concurrency when positive; 0 means "size to the CPU" (limit, else
// request, rounded up); unset keeps the default of 2.
int ResolveConcurrency(const SidecarAnnotations& a) {
  std::optional<int> configured = a.proxy_config ? a.proxy_config->concurrency : std::nullopt;
  if (configured && *configured > 0) return *configured;
  if (configured && *configured == 0) {
    const auto& cpu = a.proxy_cpu_limit ? a.proxy_cpu_limit : a.proxy_cpu;
    if (cpu) {
      auto q = ParseQuantity(*cpu);
      if (q.ok()) return std::max(1, static_cast<int>(std::ceil(*q)));
    }
  }
  return 2;
}

std::string CanonicalName(const Labels& labels, const std::string& workload) {
  for (const char* key : {keys::kCanonicalNameLabel, "app.kubernetes.io/name", "app"}) {
    auto it = labels.find(key);
    if (it != labels.end() && !it->second.empty()) return it->second;
  }
  return workload;
}

std::string CanonicalRevision(const Labels& labels) {
  for (const char* key : {keys::kCanonicalRevisionLabel, "app.kubernetes.io/version", "version"}) {
    auto it = labels.find(key);
    if (it != labels.end() && !it->second.empty()) return it->second;
  }
  return "latest";
}

void CheckNoConflicts(const json& spec, const json& user_volumes, FieldErrors& errors) {
  for (const char* list : {"containers", "initContainers"}) {
    if (!spec.contains(list)) continue;
    for (size_t i = 0; i < spec[list].size(); ++i) {
      const json& c = spec[list][i];
      std::string path = std::string("spec.") + list + "[" + std::to_string(i) + "]";
      std::string name = c["name"].get<std::string>();
      if (name == kProxyContainerName || name == kInitContainerName || name == kValidationContainerName) {
        errors.Add(path + ".name", "\"" + name + "\" is the name of an injected container");
      }
      if (!c.contains("ports") || !c["ports"].is_array()) continue;
      for (size_t j = 0; j < c["ports"].size(); ++j) {
        int port = c["ports"][j]["containerPort"].get<int>();
        if (IsSidecarReservedPort(port)) {
          errors.Add(path + ".ports[" + std::to_string(j) + "].containerPort",
                     std::to_string(port) + " is reserved for the sidecar");
        }
      }
    }
  }
  std::set<std::string> existing = {"workload-certs", "istio-envoy", "istio-data", "istio-podinfo", "istio-token",
                                    "istiod-ca-cert"};
  if (spec.contains("volumes")) {
    for (const auto& v : spec["volumes"]) {
      std::string name = v["name"].get<std::string>();
      if (existing.count(name)) errors.Add("spec.volumes", "volume \"" + name + "\" collides with an injected volume");
      existing.insert(name);
    }
  }
  for (auto it = user_volumes.begin(); it != user_volumes.end(); ++it) {
    if (existing.count(it.key())) {
      errors.Add(AnnotationPath(keys::kUserVolume), "volume \"" + it.key() + "\" already exists in the pod");
    }
  }
}

}  // namespace

InjectionResult InjectPod(const json& original, const InjectionRequest& request, const MeshConfig& mesh) {
  FieldErrors shape;
  ValidatePodShape(original, "", shape);
  if (!shape.empty()) return {Outcome::kRejected, "the pod cannot be parsed: " + shape.ToString(), nullptr};

  json pod = original;
  if (!pod.contains("metadata") || !pod["metadata"].is_object()) pod["metadata"] = json::object();
  json& md = pod["metadata"];
  if (!md.contains("annotations") || !md["annotations"].is_object()) md["annotations"] = json::object();
  if (!md.contains("labels") || !md["labels"].is_object()) md["labels"] = json::object();

  Labels labels = PodLabels(pod);
  DecisionInput in{request.namespace_name, request.namespace_labels, labels, PodAnnotations(pod),
                   BoolField(original["spec"], "hostNetwork", false)};
  Decision decision = DecideInjection(in, mesh);
  if (!decision.inject) return {Outcome::kSkipped, decision.reason, nullptr};

  if (md["annotations"].contains(keys::kStatusAnnotation)) {
    Status s = StripPreviousInjection(pod);
    if (!s.ok()) return {Outcome::kRejected, s.message(), nullptr};
  }

  // Annotations are read again: stripping an earlier injection may have restored some.
  Labels annotations = PodAnnotations(pod);
  FieldErrors errors;
  SidecarAnnotations a = ParseSidecarAnnotations(annotations, errors);
  json& spec = pod["spec"];
  json overrides = TakeOverrides(spec);
  CheckNoConflicts(spec, a.user_volumes, errors);

  SidecarPlan plan;
  plan.resources = ResolveResources(a, mesh, errors);
  if (!errors.empty()) return {Outcome::kRejected, errors.ToString(), nullptr};

  const auto& inj = mesh.injection;
  const auto& cap = mesh.capture;
  plan.native = a.native_sidecar.value_or(inj.native_sidecars);
  plan.cni = inj.cni_mode;
  plan.hold = a.proxy_config && a.proxy_config->hold_application_until_proxy_starts
                  ? *a.proxy_config->hold_application_until_proxy_starts
                  : inj.hold_application_until_proxy_starts;
  plan.status_port = a.status_port.value_or(kDefaultStatusPort);
  plan.mode = a.capture.interception_mode.value_or(cap.interception_mode);
  plan.include_outbound_ip_ranges = a.capture.include_outbound_ip_ranges.value_or(cap.include_outbound_ip_ranges);
  plan.exclude_outbound_ip_ranges = a.capture.exclude_outbound_ip_ranges.value_or(cap.exclude_outbound_ip_ranges);
  plan.include_inbound_ports = a.capture.include_inbound_ports.value_or(cap.include_inbound_ports);
  plan.exclude_inbound_ports = a.capture.exclude_inbound_ports.value_or(cap.exclude_inbound_ports);
  plan.include_outbound_ports = a.capture.include_outbound_ports.value_or(cap.include_outbound_ports);
  plan.exclude_outbound_ports = a.capture.exclude_outbound_ports.value_or(cap.exclude_outbound_ports);
  plan.exclude_interfaces = a.capture.exclude_interfaces.value_or(cap.exclude_interfaces);
  plan.concurrency = ResolveConcurrency(a);
  if (a.proxy_config) {
    plan.proxy_config_json = a.proxy_config->document.dump();
    plan.proxy_metadata = a.proxy_config->proxy_metadata;
    const json& doc = a.proxy_config->document;
    if (doc.contains("discoveryAddress") && doc["discoveryAddress"].is_string()) {
      plan.discovery_address = doc["discoveryAddress"].get<std::string>();
    }
  }
  plan.readiness_initial_delay = a.readiness_initial_delay_seconds.value_or(0);
  plan.readiness_period = a.readiness_period_seconds.value_or(15);
  plan.readiness_failure_threshold = a.readiness_failure_threshold.value_or(4);
  plan.user_volume_mounts = a.user_volume_mounts;

  for (const auto& c : spec["containers"]) {
    plan.app_containers.push_back(c["name"].get<std::string>());
    if (c.contains("ports") && c["ports"].is_array()) {
      for (const auto& p : c["ports"]) plan.pod_ports.push_back(p);
    }
  }
  WorkloadRef owner = request.workload ? *request.workload : OwnerOf(pod);
  plan.workload_name = owner.name;
  plan.owner = OwnerUri(owner, request.namespace_name);

  bool rewrite = a.rewrite_app_probers.value_or(inj.rewrite_app_probers) && plan.status_port != 0;
  plan.probers = json::object();
  if (rewrite) plan.probers = RewriteAppProbes(spec["containers"], plan.status_port);

  json& ann = md["annotations"];
  bool scrape_disabled = StringField(ann, keys::kPrometheusScrape) == "false";
  if (inj.metrics_merging && !scrape_disabled && plan.status_port != 0) {
    json app_metrics = json::object();
    for (const char* key : {keys::kPrometheusScrape, keys::kPrometheusPort, keys::kPrometheusPath}) {
      if (ann.contains(key)) app_metrics[std::string(key).substr(std::string("prometheus.io/").size())] = ann[key];
    }
    if (!app_metrics.empty()) plan.prometheus_original = app_metrics;
    ann[keys::kPrometheusScrape] = "true";
    ann[keys::kPrometheusPort] = std::to_string(plan.status_port);
    ann[keys::kPrometheusPath] = "/stats/prometheus";
  }

  // Containers, in Istio's order: capture step first, native sidecar next, then the user's init
  // containers; a classic sidecar goes last among containers unless it must start first.
  json init_step = BuildInitContainer(plan, mesh);
  json proxy = BuildProxyContainer(plan, mesh);
  if (const json* o = OverrideFor(overrides, kProxyContainerName)) MergeOverride(proxy, *o);
  if (const json* o = OverrideFor(overrides, kInitContainerName); o && !plan.cni) MergeOverride(init_step, *o);
  if (!overrides.empty()) ann[kOverridesAnnotation] = overrides.dump();
  json user_inits = spec.contains("initContainers") ? spec["initContainers"] : json::array();
  json inits = json::array({init_step});
  json injected_inits = json::array({init_step["name"]});
  json injected_containers = nullptr;
  if (plan.native) {
    inits.push_back(proxy);
    injected_inits.push_back(kProxyContainerName);
  } else if (plan.hold) {
    spec["containers"].insert(spec["containers"].begin(), proxy);
    injected_containers = json::array({kProxyContainerName});
  } else {
    spec["containers"].push_back(proxy);
    injected_containers = json::array({kProxyContainerName});
  }
  for (auto& c : user_inits) inits.push_back(std::move(c));
  spec["initContainers"] = inits;

  json volumes = BuildVolumes(mesh);
  json injected_volumes = json::array();
  for (const auto& v : volumes) injected_volumes.push_back(v["name"]);
  for (auto it = a.user_volumes.begin(); it != a.user_volumes.end(); ++it) {
    json v = it.value();
    v["name"] = it.key();
    volumes.push_back(v);
    injected_volumes.push_back(it.key());
  }
  json& pod_volumes = Array(spec, "volumes");
  for (auto& v : volumes) pod_volumes.push_back(std::move(v));

  // Status, in Istio's field order, so tools that read it find what they expect.
  nlohmann::ordered_json status = {{"initContainers", injected_inits},
                                   {"containers", injected_containers},
                                   {"volumes", injected_volumes},
                                   {"imagePullSecrets", nullptr},
                                   {"revision", mesh.revision}};
  ann[keys::kStatusAnnotation] = status.dump();
  ann[keys::kRevisionLabel] = mesh.revision;
  if (!ann.contains(keys::kDefaultContainerAnnotation) && !plan.app_containers.empty()) {
    ann[keys::kDefaultContainerAnnotation] = plan.app_containers.front();
  }
  if (!ann.contains(keys::kDefaultLogsContainerAnnotation) && !plan.app_containers.empty()) {
    ann[keys::kDefaultLogsContainerAnnotation] = plan.app_containers.front();
  }
  if (plan.cni) {
    for (const auto& [k, v] : CaptureAnnotationsFor(plan)) ann[k] = v;
  }
  for (const auto& [k, v] : inj.injected_annotations) ann[k] = v;

  json& lab = md["labels"];
  if (!lab.contains(keys::kTlsModeLabel)) lab[keys::kTlsModeLabel] = "istio";
  if (!lab.contains(keys::kCanonicalNameLabel)) lab[keys::kCanonicalNameLabel] = CanonicalName(labels, owner.name);
  if (!lab.contains(keys::kCanonicalRevisionLabel)) lab[keys::kCanonicalRevisionLabel] = CanonicalRevision(labels);

  return {Outcome::kInjected, decision.reason, std::move(pod)};
}

}  // namespace tern::webhook
