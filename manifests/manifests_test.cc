// The kustomize base: every listed resource exists and parses, the webhook configuration has
// the fields kube-apiserver needs, its four selector variants never overlap, and (where kubectl
// is installed) `kubectl kustomize` renders base/, cni/ and examples/ offline.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <map>
#include <set>

#include "control-plane/discovery/kube_source.h"
#include "core/base/files.h"
#include "core/kube/label_selector.h"
#include "core/meshconfig/mesh_config.h"
#include "core/yaml/yaml_json.h"

namespace tern {
namespace {

using nlohmann::json;

const std::string kDir = std::string(TERN_SOURCE_DIR) + "/manifests";

std::vector<json> LoadBase() {
  auto kustomization = ParseYaml(*ReadFile(kDir + "/base/kustomization.yaml"));
  EXPECT_TRUE(kustomization.ok());
  std::vector<json> out;
  for (const auto& file : (*kustomization)["resources"]) {
    auto text = ReadFile(kDir + "/base/" + file.get<std::string>());
    EXPECT_TRUE(text.ok()) << file;
    if (!text.ok()) continue;
    auto docs = ParseYamlDocuments(*text);
    EXPECT_TRUE(docs.ok()) << file << ": " << docs.status().message();
    if (docs.ok()) out.insert(out.end(), docs->begin(), docs->end());
  }
  return out;
}

const json* Find(const std::vector<json>& docs, const std::string& kind) {
  for (const auto& d : docs) {
    if (d["kind"] == kind) return &d;
  }
  return nullptr;
}

TEST(Manifests, BaseHasTheControlPlane) {
  auto docs = LoadBase();
  std::set<std::string> kinds;
  for (const auto& d : docs) kinds.insert(d["kind"].get<std::string>());
  for (const char* k : {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment",
                        "Service", "MutatingWebhookConfiguration", "PodDisruptionBudget"}) {
    EXPECT_TRUE(kinds.count(k)) << k;
  }
  const json& deploy = *Find(docs, "Deployment");
  EXPECT_EQ(deploy["spec"]["replicas"], 2);
  const json& c = deploy["spec"]["template"]["spec"]["containers"][0];
  EXPECT_EQ(c["readinessProbe"]["httpGet"]["path"], "/readyz");
  EXPECT_EQ(c["livenessProbe"]["httpGet"]["path"], "/healthz");
  EXPECT_TRUE(c["resources"].contains("requests"));
  EXPECT_TRUE(c["resources"].contains("limits"));
  // The mesh config the ConfigMap ships is valid.
  const json& cm = *Find(docs, "ConfigMap");
  auto mesh = ParseMeshConfig(cm["data"]["mesh.yaml"].get<std::string>());
  EXPECT_TRUE(mesh.ok()) << mesh.status().message();
}

TEST(Manifests, RbacIsLeastPrivilege) {
  auto docs = LoadBase();
  const json& role = *Find(docs, "ClusterRole");
  for (const auto& rule : role["rules"]) {
    for (const auto& verb : rule["verbs"]) {
      EXPECT_NE(verb, "*") << rule.dump();
      EXPECT_NE(verb, "delete") << rule.dump();
    }
    for (const auto& res : rule["resources"]) EXPECT_NE(res, "*") << rule.dump();
    for (const auto& res : rule["resources"]) EXPECT_NE(res, "secrets") << "ternd reads no Secrets cluster-wide";
  }
}

// ternd's Kubernetes source watches WatchedKinds(): the ClusterRole lets it get, list and watch
// each, and each Istio kind has its CRD in crds/, served as v1 (stored) and v1beta1, namespaced,
// with a schema.
TEST(Manifests, RbacAndCrdsCoverEveryKindTernWatches) {
  auto docs = LoadBase();
  const json& role = *Find(docs, "ClusterRole");
  auto crds_kustomization = ParseYaml(*ReadFile(kDir + "/crds/kustomization.yaml"));
  ASSERT_TRUE(crds_kustomization.ok());
  std::map<std::string, json> crds;
  for (const auto& file : (*crds_kustomization)["resources"]) {
    auto crd = ParseYaml(*ReadFile(kDir + "/crds/" + file.get<std::string>()));
    ASSERT_TRUE(crd.ok()) << file << ": " << crd.status().message();
    crds[(*crd)["metadata"]["name"].get<std::string>()] = *crd;
  }
  for (const auto& kind : control_plane::WatchedKinds()) {
    SCOPED_TRACE(kind.path);
    // "/api/v1/<plural>" or "/apis/<group>/<version>/<plural>"
    std::vector<std::string> parts;
    for (size_t at = 1, slash; at < kind.path.size(); at = slash + 1) {
      slash = kind.path.find('/', at);
      if (slash == std::string::npos) slash = kind.path.size();
      parts.push_back(kind.path.substr(at, slash - at));
    }
    const bool core = parts[0] == "api";
    const std::string group = core ? "" : parts[1], version = core ? parts[1] : parts[2], plural = parts.back();
    std::set<std::string> verbs;
    for (const auto& rule : role["rules"]) {
      bool group_ok = false, resource_ok = false;
      for (const auto& g : rule["apiGroups"]) group_ok |= g == group;
      for (const auto& r : rule["resources"]) resource_ok |= r == plural;
      if (group_ok && resource_ok) {
        for (const auto& v : rule["verbs"]) verbs.insert(v.get<std::string>());
      }
    }
    for (const char* v : {"get", "list", "watch"}) EXPECT_TRUE(verbs.count(v)) << "ClusterRole: " << v << " " << plural;
    if (core) continue;
    auto it = crds.find(plural + "." + group);
    ASSERT_NE(it, crds.end()) << "no CRD " << plural << "." << group;
    const json& spec = it->second["spec"];
    EXPECT_EQ(spec["group"], group);
    EXPECT_EQ(spec["scope"], "Namespaced");
    EXPECT_EQ(spec["names"]["kind"], kind.kind);
    EXPECT_EQ(spec["names"]["plural"], plural);
    std::map<std::string, std::pair<bool, bool>> versions;  // served, storage
    for (const auto& v : spec["versions"]) {
      versions[v["name"]] = {v["served"].get<bool>(), v["storage"].get<bool>()};
      EXPECT_EQ(v["schema"]["openAPIV3Schema"]["type"], "object") << v["name"];
      EXPECT_EQ(v["schema"]["openAPIV3Schema"]["properties"]["spec"]["type"], "object") << v["name"];
    }
    EXPECT_EQ(versions[version], std::make_pair(true, true)) << version << " is the watched, stored one";
    EXPECT_EQ(versions["v1beta1"], std::make_pair(true, false));
    EXPECT_EQ(kind.api_version, group + "/" + version);
  }
  // ternd runs with the Kubernetes source.
  const json& args = (*Find(docs, "Deployment"))["spec"]["template"]["spec"]["containers"][0]["args"];
  EXPECT_NE(args.dump().find("--kubeconfig=in-cluster"), std::string::npos) << args.dump();
}

TEST(Manifests, WebhookConfigurationAsKubeApiserverNeedsIt) {
  auto docs = LoadBase();
  const json& mwc = *Find(docs, "MutatingWebhookConfiguration");
  ASSERT_EQ(mwc["webhooks"].size(), 4u);
  for (const auto& w : mwc["webhooks"]) {
    EXPECT_EQ(w["failurePolicy"], "Fail");
    EXPECT_EQ(w["sideEffects"], "None");
    EXPECT_EQ(w["admissionReviewVersions"], json::array({"v1"}));
    EXPECT_TRUE(w["timeoutSeconds"].is_number_integer());
    EXPECT_EQ(w["reinvocationPolicy"], "IfNeeded");
    EXPECT_EQ(w["clientConfig"]["service"]["path"], "/inject");
    EXPECT_EQ(w["rules"][0]["resources"], json::array({"pods"}));
    EXPECT_EQ(w["rules"][0]["operations"], json::array({"CREATE"}));
  }
}

// kube-apiserver calls every webhook entry that matches, so the variants must be disjoint, and
// each intended case must reach exactly the expected one.
TEST(Manifests, SelectorVariantsAreDisjointAndCoverIstiosCases) {
  auto docs = LoadBase();
  const json& mwc = *Find(docs, "MutatingWebhookConfiguration");
  struct Hook {
    std::string name;
    LabelSelector ns, obj;
  };
  std::vector<Hook> hooks;
  for (const auto& w : mwc["webhooks"]) {
    FieldErrors errors;
    hooks.push_back({w["name"], ParseLabelSelector(w["namespaceSelector"], "ns", errors),
                     ParseLabelSelector(w.value("objectSelector", json()), "obj", errors)});
    ASSERT_TRUE(errors.empty()) << errors.ToString();
  }
  auto matching = [&](Labels ns, const Labels& pod) {
    std::vector<std::string> out;
    for (const auto& h : hooks) {
      if (h.ns.Matches(ns) && h.obj.Matches(pod)) out.push_back(h.name);
    }
    return out;
  };
  std::vector<Labels> namespaces = {
      {{"kubernetes.io/metadata.name", "app"}, {"istio-injection", "enabled"}},
      {{"kubernetes.io/metadata.name", "app"}, {"istio-injection", "disabled"}},
      {{"kubernetes.io/metadata.name", "app"}, {"istio.io/rev", "default"}},
      {{"kubernetes.io/metadata.name", "app"}, {"istio.io/rev", "canary"}},
      {{"kubernetes.io/metadata.name", "app"}},
      {{"kubernetes.io/metadata.name", "tern-system"}, {"istio-injection", "enabled"}},
      {{"kubernetes.io/metadata.name", "kube-system"}}};
  std::vector<Labels> pods = {{}, {{"sidecar.istio.io/inject", "true"}}, {{"sidecar.istio.io/inject", "false"}},
                              {{"istio.io/rev", "default"}}, {{"sidecar.istio.io/inject", "true"}, {"istio.io/rev", "default"}}};
  for (const auto& ns : namespaces) {
    for (const auto& pod : pods) EXPECT_LE(matching(ns, pod).size(), 1u) << json(ns).dump() << json(pod).dump();
  }
  using V = std::vector<std::string>;
  EXPECT_EQ(matching(namespaces[0], {}), V{"namespace.sidecar-injector.tern.dev"});
  EXPECT_EQ(matching(namespaces[0], pods[2]), V{});
  EXPECT_EQ(matching(namespaces[1], pods[1]), V{});
  EXPECT_EQ(matching(namespaces[2], {}), V{"rev.namespace.sidecar-injector.tern.dev"});
  EXPECT_EQ(matching(namespaces[3], {}), V{});
  EXPECT_EQ(matching(namespaces[4], {}), V{});
  EXPECT_EQ(matching(namespaces[4], pods[1]), V{"object.sidecar-injector.tern.dev"});
  EXPECT_EQ(matching(namespaces[4], pods[3]), V{"rev.object.sidecar-injector.tern.dev"});
  EXPECT_EQ(matching(namespaces[5], {}), V{}) << "the control plane never injects itself";
  EXPECT_EQ(matching(namespaces[6], pods[1]), V{});
}

std::string RunCommand(const std::string& command, int* status) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  if (!p) return out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  *status = pclose(p);
  return out;
}

std::vector<json> LoadFile(const std::string& path) {
  auto text = ReadFile(path);
  EXPECT_TRUE(text.ok()) << path;
  if (!text.ok()) return {};
  auto docs = ParseYamlDocuments(*text);
  EXPECT_TRUE(docs.ok()) << path << ": " << docs.status().message();
  return docs.ok() ? *docs : std::vector<json>{};
}

TEST(Manifests, CniOverlayRunsTheNodeInstallerWithFlagsItAccepts) {
  auto kustomization = ParseYaml(*ReadFile(kDir + "/cni/kustomization.yaml"));
  ASSERT_TRUE(kustomization.ok());
  EXPECT_EQ((*kustomization)["resources"], json({"../base", "cni-node.yaml"}));
  std::vector<json> docs = LoadFile(kDir + "/cni/cni-node.yaml");
  const json* ds = Find(docs, "DaemonSet");
  ASSERT_NE(ds, nullptr);
  const json& pod = (*ds)["spec"]["template"]["spec"];
  EXPECT_EQ(pod["serviceAccountName"], "tern-cni");
  EXPECT_EQ(pod["tolerations"], json::parse(R"([{"operator": "Exists"}])")) << "every node needs capture";
  const json& c = pod["containers"][0];
  EXPECT_EQ(c["securityContext"]["privileged"], false);
  EXPECT_EQ(c["securityContext"]["capabilities"]["drop"], json({"ALL"}));
  std::set<std::string> host_paths;
  for (const auto& v : pod["volumes"]) host_paths.insert(v["hostPath"]["path"].get<std::string>());
  EXPECT_EQ(host_paths, (std::set<std::string>{"/opt/cni/bin", "/etc/cni/net.d"}));

  // The readiness probe checks exactly what the container installs.
  json probe = c["readinessProbe"]["exec"]["command"];
  json expected = c["command"];
  for (const auto& a : c["args"]) expected.push_back(a);
  expected.push_back("--check");
  EXPECT_EQ(probe, expected);

  // The real installer accepts every flag the manifest passes (--help exits 0 only then).
  std::string cmd = std::string(TERN_BINARY_DIR) + "/cni-plugin/tern-cni-install";
  for (const auto& a : c["args"]) cmd += " '" + a.get<std::string>() + "'";
  int status = -1;
  std::string out = RunCommand(cmd + " --help 2>&1", &status);
  EXPECT_EQ(status, 0) << out;

  // tern-cni may read pods, and nothing else.
  const json* role = Find(docs, "ClusterRole");
  ASSERT_NE(role, nullptr);
  EXPECT_EQ((*role)["rules"], json::parse(R"([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}])"));

  // The overlay's mesh config is valid and switches injection to CNI mode.
  std::vector<json> patch = LoadFile(kDir + "/cni/mesh-cni-mode.yaml");
  ASSERT_EQ(patch.size(), 1u);
  auto mesh = ParseMeshConfig(patch[0]["data"]["mesh.yaml"].get<std::string>());
  ASSERT_TRUE(mesh.ok()) << mesh.status().message();
  EXPECT_TRUE(mesh->injection.cni_mode);
}

TEST(Manifests, KustomizeRendersOffline) {
  int status = -1;
  RunCommand("command -v kubectl >/dev/null 2>&1", &status);
  if (status != 0) GTEST_SKIP() << "kubectl is not installed (Debian 12 does not package it); structural checks above still ran";
  for (const std::string& dir : {kDir + "/base", kDir + "/examples", kDir + "/cni"}) {
    std::string out = RunCommand("kubectl kustomize " + dir + " 2>&1", &status);
    ASSERT_EQ(status, 0) << out;
    auto docs = ParseYamlDocuments(out);
    ASSERT_TRUE(docs.ok()) << docs.status().message();
    EXPECT_GE(docs->size(), 9u);
    for (const auto& d : *docs) {
      if (d["kind"] != "Namespace" && d["kind"] != "ClusterRole" && d["kind"] != "ClusterRoleBinding" &&
          d["kind"] != "MutatingWebhookConfiguration") {
        EXPECT_TRUE(d["metadata"].contains("namespace")) << d["kind"] << " " << d["metadata"]["name"];
      }
    }
  }
}

}  // namespace
}  // namespace tern
