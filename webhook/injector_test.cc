#include "webhook/injector.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <sstream>

#include "core/annotations/keys.h"
#include "core/kube/quantity.h"
#include "webhook/injection_corpus.h"
#include "webhook/kube_inject.h"

namespace tern::webhook {
namespace testing {
void PrintTo(const CorpusCase& c, std::ostream* os) { *os << c.name; }
}  // namespace testing
namespace {

using nlohmann::json;
using testing::CorpusCase;

std::string GoldenPath(const std::string& name) {
  return std::string(TERN_SOURCE_DIR) + "/webhook/testdata/golden/" + name + ".golden";
}

// What a golden file holds: each object's outcome and reason, then the injected documents.
std::string Render(const CorpusCase& c) {
  std::vector<KubeInjectReport> report;
  auto out = KubeInject(testing::LoadCorpusDocuments(c), testing::CorpusMesh(c), &report);
  json doc;
  if (!out.ok()) {
    doc["error"] = out.status().message();
  } else {
    for (const auto& r : report) doc["report"].push_back({{"object", r.object}, {"outcome", OutcomeName(r.outcome)}, {"reason", r.reason}});
    doc["documents"] = *out;
  }
  return ToYaml(doc);
}

class Golden : public ::testing::TestWithParam<CorpusCase> {};

// Set TERN_UPDATE_GOLDEN=1 to rewrite the golden files; review the diff like code.
TEST_P(Golden, MatchesGoldenFile) {
  const CorpusCase& c = GetParam();
  std::string got = Render(c);
  if (std::getenv("TERN_UPDATE_GOLDEN")) {
    ASSERT_TRUE(WriteFileAtomically(GoldenPath(c.name), got).ok());
  }
  auto want = ReadFile(GoldenPath(c.name));
  ASSERT_TRUE(want.ok()) << want.status().message() << " (run with TERN_UPDATE_GOLDEN=1 to create it)";
  if (got != *want) {
    // Point at the first differing line rather than dumping two whole documents.
    std::istringstream g(got), w(*want);
    std::string gl, wl;
    int line = 1;
    while (std::getline(g, gl) && std::getline(w, wl) && gl == wl) ++line;
    ADD_FAILURE() << "golden mismatch for " << c.name << " at line " << line << "\n  want: " << wl << "\n  got:  " << gl
                  << "\n(TERN_UPDATE_GOLDEN=1 rewrites the golden files)";
  }
}

// Injecting an injected pod gives the same pod: reinvocation is idempotent.
TEST_P(Golden, InjectingTwiceChangesNothing) {
  const CorpusCase& c = GetParam();
  MeshConfig mesh = testing::CorpusMesh(c);
  auto once = KubeInject(testing::LoadCorpusDocuments(c), mesh, nullptr);
  if (!once.ok()) GTEST_SKIP() << "rejected case";
  auto twice = KubeInject(*once, mesh, nullptr);
  ASSERT_TRUE(twice.ok()) << twice.status().message();
  EXPECT_TRUE(json(*twice) == json(*once)) << "second injection changed: " << json::diff(json(*once), json(*twice)).dump(2);
}

INSTANTIATE_TEST_SUITE_P(Corpus, Golden, ::testing::ValuesIn(testing::InjectionCorpus()),
                         [](const auto& param_info) {
                           std::string n = param_info.param.name;
                           for (char& ch : n) if (ch == '-') ch = '_';
                           return n;
                         });

TEST(Golden, CorpusHasAtLeastFifteenInjectedPods) {
  int injected = 0;
  for (const auto& c : testing::InjectionCorpus()) {
    std::vector<KubeInjectReport> report;
    if (KubeInject(testing::LoadCorpusDocuments(c), testing::CorpusMesh(c), &report).ok()) {
      for (const auto& r : report) injected += r.outcome == Outcome::kInjected;
    }
  }
  EXPECT_GE(injected, 15);
}

// ---- Compatibility with Istio's own expected output (compared by meaning) ----

json PodTemplate(const json& deployment) {
  return deployment["kind"] == "Pod" ? deployment : deployment["spec"]["template"];
}

std::vector<std::string> Names(const json& list) {
  std::vector<std::string> out;
  if (list.is_array()) {
    for (const auto& c : list) out.push_back(c["name"].get<std::string>());
  }
  return out;
}

const json* FindNamed(const json& list, const std::string& name) {
  for (const auto& c : list) {
    if (c["name"] == name) return &c;
  }
  return nullptr;
}

std::string EnvOf(const json& c, const std::string& name) {
  for (const auto& e : c.value("env", json::array())) {
    if (e["name"] == name && e.contains("value")) return e["value"].get<std::string>();
  }
  return "";
}

// Flag -> value of an istio-iptables / tern-init argument list.
std::map<std::string, std::string> Flags(const json& args) {
  std::map<std::string, std::string> out;
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    std::string a = args[i].get<std::string>();
    if (a.size() == 2 && a[0] == '-') out[a] = args[i + 1].get<std::string>();
  }
  return out;
}

class IstioCompat : public ::testing::TestWithParam<std::string> {};

TEST_P(IstioCompat, SameMeaningAsIstio) {
  const std::string file = GetParam();
  CorpusCase c{file, "compat:" + file, ""};
  auto expected_docs = ParseYamlDocuments(*ReadFile(testing::CorpusPath("compat:" + file + ".injected")));
  ASSERT_TRUE(expected_docs.ok());
  auto ours = KubeInject(testing::LoadCorpusDocuments(c), MeshConfig{}, nullptr);
  ASSERT_TRUE(ours.ok()) << ours.status().message();
  json want = PodTemplate((*expected_docs)[0]);
  json got = PodTemplate((*ours)[0]);

  EXPECT_EQ(Names(got["spec"]["initContainers"]), Names(want["spec"]["initContainers"]));
  EXPECT_EQ(Names(got["spec"]["containers"]), Names(want["spec"]["containers"]));

  // App containers: probes rewritten exactly as Istio rewrites them.
  for (const auto& wc : want["spec"]["containers"]) {
    if (wc["name"] == "istio-proxy") continue;
    const json* gc = FindNamed(got["spec"]["containers"], wc["name"]);
    ASSERT_NE(gc, nullptr);
    for (const char* probe : {"livenessProbe", "readinessProbe", "startupProbe", "lifecycle"}) {
      EXPECT_EQ(gc->value(probe, json()), wc.value(probe, json())) << wc["name"] << " " << probe;
    }
  }

  // The capture step: same flag values for the flags Istio sets.
  json want_init = *FindNamed(want["spec"]["initContainers"], "istio-init");
  json got_init = *FindNamed(got["spec"]["initContainers"], "istio-init");
  auto want_flags = Flags(want_init["args"]);
  auto got_flags = Flags(got_init["args"]);
  for (const auto& [flag, value] : want_flags) {
    EXPECT_EQ(got_flags[flag], value) << "tern-init flag " << flag;
  }
  EXPECT_EQ(got_init["securityContext"]["capabilities"], want_init["securityContext"]["capabilities"]);

  // The sidecar: identity, probes, prober map, resources by value.
  json want_proxy = *FindNamed(want["spec"]["initContainers"], "istio-proxy");
  json got_proxy = *FindNamed(got["spec"]["initContainers"], "istio-proxy");
  EXPECT_EQ(got_proxy["restartPolicy"], "Always");
  for (const char* k : {"runAsUser", "runAsGroup", "runAsNonRoot", "readOnlyRootFilesystem", "allowPrivilegeEscalation"}) {
    EXPECT_EQ(got_proxy["securityContext"][k], want_proxy["securityContext"][k]) << k;
  }
  EXPECT_EQ(got_proxy["readinessProbe"]["httpGet"], want_proxy["readinessProbe"]["httpGet"]);
  EXPECT_EQ(got_proxy["startupProbe"]["httpGet"], want_proxy["startupProbe"]["httpGet"]);
  std::string want_probers = EnvOf(want_proxy, "ISTIO_KUBE_APP_PROBERS");
  std::string got_probers = EnvOf(got_proxy, "ISTIO_KUBE_APP_PROBERS");
  EXPECT_EQ(want_probers.empty(), got_probers.empty());
  if (!want_probers.empty()) {
    EXPECT_EQ(json::parse(got_probers), json::parse(want_probers));
  }
  for (const char* section : {"requests", "limits"}) {
    json w = want_proxy["resources"].value(section, json::object());
    json g = got_proxy["resources"].value(section, json::object());
    ASSERT_EQ(g.size(), w.size()) << section;
    for (auto it = w.begin(); it != w.end(); ++it) {
      EXPECT_DOUBLE_EQ(*ParseQuantity(g[it.key()].get<std::string>()), *ParseQuantity(it.value().get<std::string>()))
          << section << "." << it.key();
    }
  }
  EXPECT_EQ(EnvOf(got_proxy, "ISTIO_META_APP_CONTAINERS"), EnvOf(want_proxy, "ISTIO_META_APP_CONTAINERS"));
  EXPECT_EQ(EnvOf(got_proxy, "ISTIO_META_WORKLOAD_NAME"), EnvOf(want_proxy, "ISTIO_META_WORKLOAD_NAME"));
  EXPECT_EQ(EnvOf(got_proxy, "ISTIO_META_OWNER"), EnvOf(want_proxy, "ISTIO_META_OWNER"));

  // Status annotation lists the same containers; labels and scrape annotations match.
  auto status_of = [](const json& pod) {
    return json::parse(pod["metadata"]["annotations"][keys::kStatusAnnotation].get<std::string>());
  };
  json ws = status_of(want), gs = status_of(got);
  EXPECT_EQ(gs["initContainers"], ws["initContainers"]);
  EXPECT_EQ(gs["containers"], ws["containers"]);
  EXPECT_EQ(gs["revision"], ws["revision"]);
  EXPECT_EQ(got["metadata"]["labels"], want["metadata"]["labels"]);
  for (const char* key : {"prometheus.io/path", "prometheus.io/port", "prometheus.io/scrape",
                          "kubectl.kubernetes.io/default-container", "istio.io/rev"}) {
    EXPECT_EQ(got["metadata"]["annotations"][key], want["metadata"]["annotations"][key]) << key;
  }
}

INSTANTIATE_TEST_SUITE_P(Istio, IstioCompat,
                         ::testing::Values("hello.yaml", "hello-probes.yaml", "multi-init.yaml",
                                           "traffic-annotations.yaml"),
                         [](const auto& param_info) {
                           std::string n = param_info.param.substr(0, param_info.param.find('.'));
                           for (char& ch : n) if (ch == '-') ch = '_';
                           return n;
                         });

TEST(IstioCompat, IgnoredPodIsUntouched) {
  CorpusCase c{"ignore", "compat:hello-ignore.yaml", ""};
  auto ours = KubeInject(testing::LoadCorpusDocuments(c), MeshConfig{}, nullptr);
  ASSERT_TRUE(ours.ok());
  EXPECT_EQ((*ours)[0], testing::LoadCorpusDocuments(c)[0]);
}

// ---- Rejections never produce a pod ----

TEST(Injector, BadAnnotationsRejectNamingEachAnnotationAndValue) {
  auto pod = testing::LoadCorpusDocuments({"bad", "webhook/testdata/bad-annotations.yaml", ""})[0];
  auto r = InjectPod(pod, {"default", std::nullopt, std::nullopt}, MeshConfig{});
  ASSERT_EQ(r.outcome, Outcome::kRejected);
  EXPECT_TRUE(r.pod.is_null());
  for (const char* part : {"traffic.sidecar.istio.io/excludeInboundPorts\"]: invalid value \"70000\"",
                           "traffic.sidecar.istio.io/excludeOutboundIPRanges\"]: invalid value \"10.0.0.0/33\"",
                           "sidecar.istio.io/interceptionMode\"]: invalid value \"MAGIC\"",
                           "sidecar.istio.io/proxyMemory\"]: invalid value \"abc\""}) {
    EXPECT_NE(r.reason.find(part), std::string::npos) << part << " in " << r.reason;
  }
}

TEST(Injector, UnparseablePodNamesTheField) {
  auto pod = json::parse(R"({"metadata":{"labels":{"a":1}},"spec":{"containers":[{"name":"x","ports":[{"containerPort":"80"}]}]}})");
  auto r = InjectPod(pod, {"default", std::nullopt, std::nullopt}, MeshConfig{});
  ASSERT_EQ(r.outcome, Outcome::kRejected);
  EXPECT_NE(r.reason.find("metadata.labels.a: must be a string"), std::string::npos) << r.reason;
  EXPECT_NE(r.reason.find("spec.containers[0].ports[0].containerPort: is required and must be an integer"),
            std::string::npos) << r.reason;
  EXPECT_EQ(InjectPod(json::parse(R"({"spec":{}})"), {"d", std::nullopt, std::nullopt}, MeshConfig{}).outcome,
            Outcome::kRejected);
  EXPECT_EQ(InjectPod(json::parse("[]"), {"d", std::nullopt, std::nullopt}, MeshConfig{}).outcome, Outcome::kRejected);
}

// Istio's proxy override: a container the user names istio-proxy (or istio-init) is merged over
// the template, and survives re-injection through proxy.istio.io/overrides.
TEST(Injector, UserContainersNamedLikeTheSidecarOverrideTheTemplate) {
  auto docs = testing::LoadCorpusDocuments({"o", "compat:proxy-override.yaml", ""});
  auto out = KubeInject(docs, MeshConfig{}, nullptr);
  ASSERT_TRUE(out.ok()) << out.status().message();
  json spec = (*out)[0]["spec"]["template"]["spec"];
  EXPECT_EQ(Names(spec["containers"]), std::vector<std::string>{"hello"});
  EXPECT_EQ(Names(spec["initContainers"]), (std::vector<std::string>{"istio-init", "istio-proxy"}));
  const json& proxy = *FindNamed(spec["initContainers"], "istio-proxy");
  EXPECT_EQ(proxy["image"], "tern/tern-proxy:0.1.0") << "image: auto keeps the template's image";
  EXPECT_EQ(proxy["resources"]["requests"]["cpu"], "123m");
  EXPECT_EQ(proxy["resources"]["limits"]["cpu"], "3000m");
  EXPECT_EQ(proxy["resources"]["limits"]["memory"], "1Gi") << "maps merge key by key";
  EXPECT_EQ(proxy["securityContext"]["runAsUser"], 1234);
  EXPECT_EQ(proxy["securityContext"]["capabilities"]["drop"], json::array({"ALL"}));
  EXPECT_EQ(proxy["tty"], true);
  EXPECT_EQ(proxy["lifecycle"]["preStop"]["exec"]["command"], json::array({"sleep", "10"}));
  bool certs = false, tokens = false;
  for (const auto& m : proxy["volumeMounts"]) {
    certs |= m["mountPath"] == "/etc/certs";
    tokens |= m["mountPath"] == "/var/run/secrets/tokens";
  }
  EXPECT_TRUE(certs && tokens) << "volumeMounts merge by mountPath";
  const json& init = *FindNamed(spec["initContainers"], "istio-init");
  EXPECT_EQ(init["image"], "fake/custom-image");
  EXPECT_EQ(init["args"], json::array({"my", "custom", "args"}));
  EXPECT_TRUE((*out)[0]["spec"]["template"]["metadata"]["annotations"].contains("proxy.istio.io/overrides"));
}

TEST(Injector, CorruptStatusAnnotationIsRejectedNotGuessed) {
  auto pod = json::parse(R"({"metadata":{"annotations":{"sidecar.istio.io/status":"{not json"}},
                             "spec":{"containers":[{"name":"app"}]}})");
  auto r = InjectPod(pod, {"default", std::nullopt, std::nullopt}, MeshConfig{});
  ASSERT_EQ(r.outcome, Outcome::kRejected);
  EXPECT_NE(r.reason.find("sidecar.istio.io/status"), std::string::npos);
}

}  // namespace
}  // namespace tern::webhook
