#include "cni-plugin/plugin.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <variant>

#include "cni-plugin/cni_version.h"
#include "cni-plugin/net_conf.h"
#include "cni-plugin/pod_capture.h"
#include "core/capture/applier.h"
#include "core/capture/plan.h"
#include "core/kube/client.h"

namespace tern::cni {

using nlohmann::json;

namespace {

PluginOutput Fail(const Error& e, const std::string& version, const std::string& what) {
  return {1, e.ToJson(version).dump() + "\n", "tern-cni: " + what + ": error " + std::to_string(e.code) + ": " + e.msg};
}

// Kubernetes object names: DNS-1123 subdomain characters. Anything else would change the
// request path.
bool IsObjectName(const std::string& s) {
  return !s.empty() && s.size() <= 253 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
         });
}

struct Skip {
  std::string reason;
};
using PodLookup = std::variant<json, Skip, Error>;

// The pod this call is for, read from the API; or why there is none to capture.
// `before_api` runs just before the API is asked, once the pod is known to be a candidate.
PodLookup LookupPod(const NetConf& conf, const CniEnv& env, const std::function<void()>& before_api) {
  auto arg = [&](const char* key) {
    auto it = env.args.find(key);
    return it == env.args.end() ? std::string() : it->second;
  };
  std::string ns = arg("K8S_POD_NAMESPACE"), name = arg("K8S_POD_NAME");
  if (ns.empty() || name.empty()) return Skip{"not a Kubernetes pod (CNI_ARGS has no K8S_POD_NAMESPACE/K8S_POD_NAME)"};
  if (!IsObjectName(ns)) return Error{kInvalidEnvironment, "CNI_ARGS: K8S_POD_NAMESPACE \"" + ns + "\" is not a namespace name", ""};
  if (!IsObjectName(name)) return Error{kInvalidEnvironment, "CNI_ARGS: K8S_POD_NAME \"" + name + "\" is not a pod name", ""};
  const auto& ex = conf.exclude_namespaces;
  if (std::find(ex.begin(), ex.end(), ns) != ex.end()) return Skip{"namespace " + ns + " is excluded"};

  before_api();
  auto cluster = kube::LoadKubeconfig(conf.kubeconfig);
  if (!cluster.ok()) return Error{kInvalidConfig, "kubernetes.kubeconfig: " + cluster.status().message(), ""};
  auto client = kube::Client::Create(*cluster, conf.api_timeout);
  if (!client.ok()) return Error{kInvalidConfig, "kubernetes.kubeconfig: " + client.status().message(), ""};
  std::string path = "/api/v1/namespaces/" + ns + "/pods/" + name;
  auto response = (*client)->Get(path);
  if (!response.ok()) {
    return Error{kTryAgainLater, "Kubernetes API: GET " + path + ": " + response.status().message(), ""};
  }
  if (response->status == 200) return std::move(response->body);
  int code = response->status == 429 || response->status >= 500 ? kTryAgainLater : kKubernetesApi;
  return Error{code, "Kubernetes API: GET " + path + ": " + std::to_string(response->status) + " " + response->message(),
               ""};
}

std::string PodName(const CniEnv& env) {
  auto ns = env.args.find("K8S_POD_NAMESPACE"), name = env.args.find("K8S_POD_NAME");
  if (ns == env.args.end() || name == env.args.end()) return "container " + env.container_id;
  return "pod " + ns->second + "/" + name->second;
}

bool PathExists(const std::string& path, std::string* why) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) return true;
  *why = std::strerror(errno);
  return false;
}

double MillisSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

std::string Ms(double ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f ms", ms);
  return buf;
}

// What ADD and CHECK share: the converted prevResult, the pod and its capture decision.
struct Prepared {
  json result;
  PodCapture pod;
  double api_ms = 0;  // reading the pod, TLS included
  std::unique_ptr<capture::Applier> applier;
  // Warms nftables up in the pod's namespace while the API answers; joined before applying.
  std::jthread prewarm;
};
std::variant<Prepared, Error> Prepare(const NetConf& conf, const CniEnv& env) {
  if (!conf.prev_result) {
    return Error{kInvalidConfig,
                 "prevResult: required: tern-cni is a chained plugin and must come after the plugin that creates "
                 "the pod's interface",
                 ""};
  }
  Prepared p;
  const json& prev = *conf.prev_result;
  std::string prev_version = prev.is_object() && prev.contains("cniVersion") && prev["cniVersion"].is_string()
                                 ? prev["cniVersion"].get<std::string>()
                                 : conf.cni_version;
  if (auto e = ConvertResult(prev, prev_version, conf.cni_version, "prevResult", &p.result)) return *e;
  std::string why;
  if (!PathExists(env.netns, &why)) return Error{kInvalidEnvironment, "CNI_NETNS: " + env.netns + ": " + why, ""};
  p.applier = capture::MakeKernelApplier(env.netns);
  auto api_start = std::chrono::steady_clock::now();
  PodLookup pod = LookupPod(conf, env, [&] { p.prewarm = std::jthread([&applier = *p.applier] { applier.Prewarm(); }); });
  p.api_ms = MillisSince(api_start);
  if (auto* e = std::get_if<Error>(&pod)) return *e;
  if (auto* s = std::get_if<Skip>(&pod)) {
    p.pod.reason = s->reason;
    return p;
  }
  FieldErrors errors;
  p.pod = DecidePodCapture(std::get<json>(pod), errors);
  if (!errors.empty()) return Error{kInvalidPodSettings, PodName(env) + ": " + errors.ToString(), ""};
  return p;
}

PluginOutput Add(const NetConf& conf, const CniEnv& env) {
  auto start = std::chrono::steady_clock::now();
  auto prepared = Prepare(conf, env);
  if (auto* e = std::get_if<Error>(&prepared)) return Fail(*e, conf.cni_version, "ADD " + PodName(env));
  auto& p = std::get<Prepared>(prepared);
  std::string out = p.result.dump() + "\n";
  if (!p.pod.capture) return {0, out, "tern-cni: ADD " + PodName(env) + ": not captured: " + p.pod.reason};
  capture::Ruleset plan = capture::BuildPlan(p.pod.config);
  if (p.prewarm.joinable()) p.prewarm.join();
  auto apply_start = std::chrono::steady_clock::now();
  Status s = p.applier->Apply(plan);
  double apply_ms = MillisSince(apply_start);
  if (!s.ok()) {
    return Fail({kCaptureFailed, PodName(env) + ": capture not installed: " + s.message(), ""}, conf.cni_version,
                "ADD " + PodName(env));
  }
  return {0, out,
          "tern-cni: ADD " + PodName(env) + ": capture installed (" + p.pod.reason + ") in " + Ms(MillisSince(start)) +
              " (API " + Ms(p.api_ms) + ", apply " + Ms(apply_ms) + ")"};
}

PluginOutput Check(const NetConf& conf, const CniEnv& env) {
  if (VersionLess(conf.cni_version, "0.4.0")) {
    return Fail({kIncompatibleVersion, "cniVersion: CHECK needs 0.4.0 or later, the configuration says " +
                                           conf.cni_version, ""},
                conf.cni_version, "CHECK");
  }
  auto prepared = Prepare(conf, env);
  if (auto* e = std::get_if<Error>(&prepared)) return Fail(*e, conf.cni_version, "CHECK " + PodName(env));
  auto& p = std::get<Prepared>(prepared);
  if (!p.pod.capture) return {0, "", "tern-cni: CHECK " + PodName(env) + ": not captured: " + p.pod.reason};
  if (p.prewarm.joinable()) p.prewarm.join();
  Status s = p.applier->Verify(capture::BuildPlan(p.pod.config));
  if (!s.ok()) {
    return Fail({kCaptureFailed, PodName(env) + ": capture check failed: " + s.message(), ""}, conf.cni_version,
                "CHECK " + PodName(env));
  }
  return {0, "", "tern-cni: CHECK " + PodName(env) + ": capture in place"};
}

PluginOutput Del(const NetConf& conf, const CniEnv& env) {
  std::string why;
  if (env.netns.empty() || !PathExists(env.netns, &why)) {
    return {0, "", "tern-cni: DEL " + PodName(env) + ": network namespace already gone"};
  }
  // DEL reads nothing from the API (the pod may be gone): it removes Tern's table and the
  // TPROXY routing with tern-cni's fixed mark and table, whichever mode the pod used.
  capture::CaptureConfig config;
  config.mode = InterceptionMode::kTproxy;
  Status s = capture::MakeKernelApplier(env.netns)->Remove(capture::BuildPlan(config));
  if (!s.ok()) {
    return Fail({kCaptureFailed, PodName(env) + ": capture not removed: " + s.message(), ""}, conf.cni_version,
                "DEL " + PodName(env));
  }
  return {0, "", "tern-cni: DEL " + PodName(env) + ": capture removed"};
}

PluginOutput StatusCommand(const NetConf& conf) {
  if (VersionLess(conf.cni_version, "1.1.0")) {
    return Fail({kIncompatibleVersion, "cniVersion: STATUS needs 1.1.0, the configuration says " + conf.cni_version, ""},
                conf.cni_version, "STATUS");
  }
  // Ready when pods can be read: the kubeconfig loads and makes a TLS client. The API itself is
  // not called, so a blip of the API server does not mark the node's network not ready.
  auto cluster = kube::LoadKubeconfig(conf.kubeconfig);
  Result<std::unique_ptr<kube::Client>> client = cluster.ok() ? kube::Client::Create(*cluster, conf.api_timeout)
                                                              : Result<std::unique_ptr<kube::Client>>(cluster.status());
  if (!client.ok()) {
    return Fail({kPluginNotAvailable, "kubernetes.kubeconfig: " + client.status().message(), ""}, conf.cni_version,
                "STATUS");
  }
  return {0, "", ""};
}

PluginOutput VersionInfo(std::string_view stdin_bytes) {
  json supported = SupportedVersions();
  return {0, json({{"cniVersion", VersionForErrors(stdin_bytes)}, {"supportedVersions", supported}}).dump() + "\n", ""};
}

}  // namespace

PluginOutput RunPlugin(const EnvLookup& env_lookup, std::string_view stdin_bytes) {
  std::string version = VersionForErrors(stdin_bytes);
  CniEnv env;
  if (auto e = ParseCniEnv(env_lookup, &env)) return Fail(*e, version, "environment");
  if (env.command == Command::kVersion) return VersionInfo(stdin_bytes);
  NetConf conf;
  if (auto e = ParseNetConf(stdin_bytes, &conf)) return Fail(*e, version, env.command_name + " " + PodName(env));
  switch (env.command) {
    case Command::kAdd:
      return Add(conf, env);
    case Command::kCheck:
      return Check(conf, env);
    case Command::kDel:
      return Del(conf, env);
    case Command::kStatus:
      return StatusCommand(conf);
    case Command::kGc:
      // Capture lives in each pod's own network namespace and goes with it: nothing to collect.
      if (VersionLess(conf.cni_version, "1.1.0")) {
        return Fail({kIncompatibleVersion, "cniVersion: GC needs 1.1.0, the configuration says " + conf.cni_version, ""},
                    conf.cni_version, "GC");
      }
      return {0, "", ""};
    case Command::kVersion:
      break;
  }
  return VersionInfo(stdin_bytes);
}

}  // namespace tern::cni
