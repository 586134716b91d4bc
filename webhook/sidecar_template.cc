#include "webhook/sidecar_template.h"

#include <algorithm>

#include "core/annotations/keys.h"
#include "core/net/ip_range.h"

namespace tern::webhook {

using nlohmann::json;

namespace {

json FieldRef(const char* name, const char* path) {
  return {{"name", name}, {"valueFrom", {{"fieldRef", {{"fieldPath", path}}}}}};
}
json ResourceRef(const char* name, const char* resource) {
  return {{"name", name}, {"valueFrom", {{"resourceFieldRef", {{"resource", resource}, {"divisor", "1"}}}}}};
}
json Env(const std::string& name, const std::string& value) { return {{"name", name}, {"value", value}}; }

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ",") + s;
  return out;
}

// The sidecar's own ports are never captured inbound; the user's exclusions sit in between, as
// in Istio's template (15090,15021,<user>,<status port>). Repeats are dropped: in CNI mode the
// list is written back as the pod's annotation, and injecting that pod again must give the
// same list.
std::string ExcludedInboundPorts(const SidecarPlan& plan) {
  std::vector<std::string> ports;
  auto add = [&](const std::string& p) {
    if (std::find(ports.begin(), ports.end(), p) == ports.end()) ports.push_back(p);
  };
  add(std::to_string(kPrometheusPort));
  add(std::to_string(kHealthPort));
  for (const auto& p : SplitList(plan.exclude_inbound_ports)) add(p);
  if (plan.status_port != 0) add(std::to_string(plan.status_port));
  return Join(ports);
}

json ProxyMetadataEnv(const SidecarPlan& plan) {
  json env = json::array();
  for (const auto& [k, v] : plan.proxy_metadata) env.push_back(Env(k, v));
  return env;
}

}  // namespace

std::vector<std::string> CaptureArgs(const SidecarPlan& plan) {
  std::vector<std::string> args = {
      "-p", std::to_string(kOutboundPort), "-z", std::to_string(kInboundPort),
      "-u", std::to_string(kProxyUid),     "-g", std::to_string(kProxyUid),
      "-m", InterceptionModeName(plan.mode),
      "-i", plan.include_outbound_ip_ranges,
      "-x", plan.exclude_outbound_ip_ranges,
      "-b", plan.include_inbound_ports,
      "-d", ExcludedInboundPorts(plan)};
  if (!plan.include_outbound_ports.empty()) args.insert(args.end(), {"-q", plan.include_outbound_ports});
  if (!plan.exclude_outbound_ports.empty()) args.insert(args.end(), {"-o", plan.exclude_outbound_ports});
  if (!plan.exclude_interfaces.empty()) args.insert(args.end(), {"-c", plan.exclude_interfaces});
  return args;
}

std::map<std::string, std::string> CaptureAnnotationsFor(const SidecarPlan& plan) {
  return {{keys::kInterceptionMode, InterceptionModeName(plan.mode)},
          {keys::kIncludeOutboundIPRanges, plan.include_outbound_ip_ranges},
          {keys::kExcludeOutboundIPRanges, plan.exclude_outbound_ip_ranges},
          {keys::kIncludeInboundPorts, plan.include_inbound_ports},
          {keys::kExcludeInboundPorts, ExcludedInboundPorts(plan)},
          {keys::kIncludeOutboundPorts, plan.include_outbound_ports},
          {keys::kExcludeOutboundPorts, plan.exclude_outbound_ports},
          {keys::kExcludeInterfaces, plan.exclude_interfaces}};
}

json BuildInitContainer(const SidecarPlan& plan, const MeshConfig& mesh) {
  json args = CaptureArgs(plan);
  json c = {{"name", plan.cni ? kValidationContainerName : kInitContainerName},
            {"image", mesh.injection.init_image},
            {"imagePullPolicy", mesh.injection.image_pull_policy},
            {"command", {"tern-init"}},
            {"resources", plan.resources}};
  if (plan.cni) {
    // CNI mode: the node plugin programmed capture; this step only proves it, unprivileged.
    args.push_back("--run-validation");
    c["securityContext"] = {{"allowPrivilegeEscalation", false},
                            {"capabilities", {{"drop", {"ALL"}}}},
                            {"privileged", false},
                            {"readOnlyRootFilesystem", true},
                            {"runAsGroup", kValidationUid},
                            {"runAsNonRoot", true},
                            {"runAsUser", kValidationUid}};
  } else {
    c["securityContext"] = {{"allowPrivilegeEscalation", false},
                            {"capabilities", {{"add", {"NET_ADMIN", "NET_RAW"}}, {"drop", {"ALL"}}}},
                            {"privileged", false},
                            {"readOnlyRootFilesystem", false},
                            {"runAsGroup", 0},
                            {"runAsNonRoot", false},
                            {"runAsUser", 0}};
  }
  c["args"] = args;
  json env = ProxyMetadataEnv(plan);
  if (!env.empty()) c["env"] = env;
  return c;
}

json BuildProxyContainer(const SidecarPlan& plan, const MeshConfig& mesh) {
  json args = {"--domain", "$(POD_NAMESPACE).svc.cluster.local",
               "--log-level", mesh.injection.proxy_log_level,
               "--concurrency", std::to_string(plan.concurrency),
               "--status-port", std::to_string(plan.status_port)};
  json env = json::array({
      Env("CA_ADDR", mesh.ca_address),
      Env("TERN_DISCOVERY_ADDRESS", plan.discovery_address.empty() ? mesh.discovery_address : plan.discovery_address),
      FieldRef("POD_NAME", "metadata.name"),
      FieldRef("POD_NAMESPACE", "metadata.namespace"),
      FieldRef("INSTANCE_IP", "status.podIP"),
      FieldRef("SERVICE_ACCOUNT", "spec.serviceAccountName"),
      FieldRef("HOST_IP", "status.hostIP"),
      ResourceRef("ISTIO_CPU_LIMIT", "limits.cpu"),
      ResourceRef("TERN_MEMORY_LIMIT", "limits.memory"),
      Env("PROXY_CONFIG", plan.proxy_config_json),
      Env("ISTIO_META_POD_PORTS", plan.pod_ports.dump()),
      Env("ISTIO_META_APP_CONTAINERS", [&] {
        std::string s;
        for (const auto& n : plan.app_containers) s += (s.empty() ? "" : ",") + n;
        return s;
      }()),
      Env("ISTIO_META_CLUSTER_ID", mesh.cluster_id),
      FieldRef("ISTIO_META_NODE_NAME", "spec.nodeName"),
      Env("ISTIO_META_INTERCEPTION_MODE", InterceptionModeName(plan.mode)),
      Env("ISTIO_META_WORKLOAD_NAME", plan.workload_name),
      Env("ISTIO_META_OWNER", plan.owner),
      Env("ISTIO_META_MESH_ID", mesh.mesh_id),
      Env("TRUST_DOMAIN", mesh.trust_domain),
  });
  for (const auto& e : ProxyMetadataEnv(plan)) env.push_back(e);
  if (!plan.probers.empty()) env.push_back(Env("ISTIO_KUBE_APP_PROBERS", plan.probers.dump()));
  if (plan.prometheus_original.is_object()) {
    env.push_back(Env("ISTIO_PROMETHEUS_ANNOTATIONS", plan.prometheus_original.dump()));
  }

  json ports = json::array({{{"containerPort", kPrometheusPort}, {"name", "http-envoy-prom"}, {"protocol", "TCP"}},
                            {{"containerPort", kHealthPort}, {"name", "http-health"}, {"protocol", "TCP"}}});
  if (plan.status_port != 0) {
    ports.push_back({{"containerPort", plan.status_port}, {"name", "http-status"}, {"protocol", "TCP"}});
  }

  json ready_probe = {{"httpGet", {{"path", "/healthz/ready"}, {"port", kHealthPort}}},
                      {"initialDelaySeconds", plan.readiness_initial_delay},
                      {"periodSeconds", plan.readiness_period},
                      {"failureThreshold", plan.readiness_failure_threshold},
                      {"timeoutSeconds", 3}};
  json capabilities = {{"drop", {"ALL"}}};
  // TPROXY needs IP_TRANSPARENT on the proxy's sockets, which requires NET_ADMIN.
  if (plan.mode == InterceptionMode::kTproxy) capabilities["add"] = {"NET_ADMIN"};

  json mounts = json::array({
      {{"mountPath", "/var/run/secrets/workload-spiffe-credentials"}, {"name", "workload-certs"}},
      {{"mountPath", "/var/run/secrets/istio"}, {"name", "istiod-ca-cert"}},
      {{"mountPath", "/var/lib/istio/data"}, {"name", "istio-data"}},
      {{"mountPath", "/etc/istio/proxy"}, {"name", "istio-envoy"}},
      {{"mountPath", "/var/run/secrets/tokens"}, {"name", "istio-token"}},
      {{"mountPath", "/etc/istio/pod"}, {"name", "istio-podinfo"}},
  });
  for (auto it = plan.user_volume_mounts.begin(); it != plan.user_volume_mounts.end(); ++it) {
    json m = it.value();
    m["name"] = it.key();
    mounts.push_back(m);
  }

  json c = {{"name", kProxyContainerName},
            {"image", mesh.injection.proxy_image},
            {"imagePullPolicy", mesh.injection.image_pull_policy},
            {"args", args},
            {"env", env},
            {"ports", ports},
            {"readinessProbe", ready_probe},
            {"resources", plan.resources},
            {"securityContext", {{"allowPrivilegeEscalation", false},
                                 {"capabilities", capabilities},
                                 {"privileged", false},
                                 {"readOnlyRootFilesystem", true},
                                 {"runAsGroup", kProxyUid},
                                 {"runAsNonRoot", true},
                                 {"runAsUser", kProxyUid}}},
            {"volumeMounts", mounts}};
  if (plan.native) {
    // A native sidecar: an init container that keeps running. The kubelet starts the app only
    // once the startup probe passes, and Jobs complete when their app containers exit.
    c["restartPolicy"] = "Always";
    c["startupProbe"] = {{"httpGet", {{"path", "/healthz/ready"}, {"port", kHealthPort}}},
                         {"periodSeconds", 1},
                         {"failureThreshold", 600},
                         {"timeoutSeconds", 3}};
  } else if (plan.hold) {
    // Classic layout: the kubelet runs postStart to completion before starting the next
    // container, so `tern-proxy wait` (returns once the proxy is ready) holds the app back.
    c["lifecycle"] = {{"postStart", {{"exec", {{"command", {"tern-proxy", "wait", "--timeout=60s"}}}}}}};
  }
  return c;
}

json BuildVolumes(const MeshConfig& mesh) {
  json podinfo_items = json::array();
  podinfo_items.push_back({{"path", "labels"}, {"fieldRef", {{"fieldPath", "metadata.labels"}}}});
  podinfo_items.push_back({{"path", "annotations"}, {"fieldRef", {{"fieldPath", "metadata.annotations"}}}});
  json token_source = json::object();
  token_source["serviceAccountToken"] = {
      {"audience", mesh.injection.token_audience}, {"expirationSeconds", 43200}, {"path", "istio-token"}};
  json token_sources = json::array();
  token_sources.push_back(token_source);

  json volumes = json::array();
  volumes.push_back({{"name", "workload-certs"}, {"emptyDir", {{"medium", "Memory"}}}});
  volumes.push_back({{"name", "istio-envoy"}, {"emptyDir", {{"medium", "Memory"}}}});
  volumes.push_back({{"name", "istio-data"}, {"emptyDir", json::object()}});
  volumes.push_back({{"name", "istio-podinfo"}, {"downwardAPI", {{"items", podinfo_items}}}});
  volumes.push_back({{"name", "istio-token"}, {"projected", {{"sources", token_sources}}}});
  volumes.push_back({{"name", "istiod-ca-cert"}, {"configMap", {{"name", "istio-ca-root-cert"}}}});
  return volumes;
}

}  // namespace tern::webhook
