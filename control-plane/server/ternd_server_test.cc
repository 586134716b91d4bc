// ternd's webhook over real HTTPS: AdmissionReviews as kube-apiserver sends them, patches applied
// with an independent RFC 6902 implementation, every bad input, and live reloads.
#include "control-plane/server/ternd_server.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <thread>

#include "core/base/base64.h"
#include "core/base/files.h"
#include "core/tls/x509.h"
#include "webhook/admission_review_builder.h"
#include "webhook/injection_corpus.h"
#include "webhook/injector.h"

namespace tern::control_plane {
namespace {

using webhook::InjectPod;
using webhook::InjectionResult;
using webhook::Outcome;
using webhook::PodCreateReview;
using webhook::PodFromWorkload;
namespace testing = webhook::testing;

using nlohmann::json;

class TerndServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tern-webhook-XXXXXX";
    dir_ = mkdtemp(tmpl);
    ca_ = *CreateSelfSigned({.common_name = "test CA", .is_ca = true});
    WriteCert(ca_);
    ASSERT_TRUE(WriteFileAtomically(dir_ + "/ca.crt", ca_.cert_pem).ok());
    ASSERT_TRUE(WriteFileAtomically(dir_ + "/mesh.yaml", "revision: default\n").ok());
    TerndOptions o;
    o.https.host = "127.0.0.1";
    o.https.port = 0;
    o.cert_file = dir_ + "/tls.crt";
    o.key_file = dir_ + "/tls.key";
    o.mesh_config_file = dir_ + "/mesh.yaml";
    o.https.max_body_bytes = 256 * 1024;
    o.reload_interval = std::chrono::milliseconds(50);
    auto s = TerndServer::Create(o, log_);
    ASSERT_TRUE(s.ok()) << s.status().message();
    server_ = std::move(s).value();
    thread_ = std::thread([this] { server_->Run(); });
  }
  void TearDown() override {
    server_->Stop();
    thread_.join();
    std::system(("rm -rf " + dir_).c_str());
  }
  void WriteCert(const PemPair& ca) {
    auto leaf = *IssueCertificate(ca, {.common_name = "ternd", .dns_names = {"localhost"}, .ip_addresses = {"127.0.0.1"}});
    ASSERT_TRUE(WriteFileAtomically(dir_ + "/tls.crt", leaf.cert_pem).ok());
    ASSERT_TRUE(WriteFileAtomically(dir_ + "/tls.key", leaf.key_pem).ok());
  }
  std::unique_ptr<httplib::SSLClient> Client(const std::string& ca_file) {
    auto c = std::make_unique<httplib::SSLClient>("127.0.0.1", server_->port());
    c->set_ca_cert_path(ca_file.c_str());
    c->enable_server_certificate_verification(true);
    c->set_connection_timeout(5, 0);
    c->set_read_timeout(5, 0);
    return c;
  }
  httplib::Result Post(const std::string& body, const std::string& type = "application/json") {
    return Client(dir_ + "/ca.crt")->Post("/inject", body, type.c_str());
  }
  json PostReview(const json& review) {
    auto res = Post(review.dump());
    EXPECT_TRUE(res) << "no response";
    if (!res) return nullptr;
    EXPECT_EQ(res->status, 200) << res->body;
    return json::parse(res->body);
  }

  Logger log_{2, LogLevel::kOff};
  std::string dir_;
  PemPair ca_;
  std::unique_ptr<TerndServer> server_;
  std::thread thread_;
};

// The shared corpus through HTTPS: the patched pod equals the pure injector's result.
TEST_F(TerndServerTest, CorpusThroughHttpsMatchesInjector) {
  int n = 0, injected = 0;
  for (const auto& c : testing::InjectionCorpus()) {
    if (!c.mesh_yaml.empty()) continue;  // the server runs with the default mesh config
    for (const auto& doc : testing::LoadCorpusDocuments(c)) {
      std::string ns = "corpus";
      json pod = PodFromWorkload(doc, ns);
      std::string uid = "uid-" + c.name + "-" + std::to_string(n++);
      json answer = PostReview(PodCreateReview(pod, ns, uid));
      ASSERT_TRUE(answer.is_object());
      EXPECT_EQ(answer["apiVersion"], "admission.k8s.io/v1");
      EXPECT_EQ(answer["kind"], "AdmissionReview");
      const json& resp = answer["response"];
      EXPECT_EQ(resp["uid"], uid);
      InjectionResult direct = InjectPod(pod, {ns, std::nullopt, std::nullopt}, MeshConfig{});
      switch (direct.outcome) {
        case Outcome::kInjected: {
          ++injected;
          ASSERT_EQ(resp["allowed"], true) << c.name;
          ASSERT_EQ(resp["patchType"], "JSONPatch");
          auto patch = Base64Decode(resp["patch"].get<std::string>());
          ASSERT_TRUE(patch.has_value());
          json patched = pod.patch(json::parse(*patch));  // nlohmann's RFC 6902 implementation
          EXPECT_EQ(patched, direct.pod) << c.name;
          bool has_proxy = false;
          for (const auto& ic : patched["spec"]["initContainers"]) has_proxy |= ic["name"] == "istio-proxy";
          for (const auto& ac : patched["spec"]["containers"]) has_proxy |= ac["name"] == "istio-proxy";
          EXPECT_TRUE(has_proxy) << c.name;
          EXPECT_TRUE(patched["metadata"]["annotations"].contains("sidecar.istio.io/status")) << c.name;
          break;
        }
        case Outcome::kSkipped:
          EXPECT_EQ(resp["allowed"], true) << c.name;
          EXPECT_FALSE(resp.contains("patch")) << c.name;
          break;
        case Outcome::kRejected:
          EXPECT_EQ(resp["allowed"], false) << c.name;
          EXPECT_NE(resp["status"]["message"].get<std::string>().find(direct.reason), std::string::npos) << c.name;
          break;
      }
    }
  }
  EXPECT_GE(injected, 15);
}

TEST_F(TerndServerTest, V1beta1IsAnsweredInKindAndDryRunHasSameAnswer) {
  json pod = testing::LoadCorpusDocuments({"hello", "compat:hello.yaml", ""})[0];
  pod = PodFromWorkload(pod, "app");
  json v1beta1 = PostReview(PodCreateReview(pod, "app", "u-beta", false, "admission.k8s.io/v1beta1"));
  EXPECT_EQ(v1beta1["apiVersion"], "admission.k8s.io/v1beta1");
  json normal = PostReview(PodCreateReview(pod, "app", "u-1"));
  json dry = PostReview(PodCreateReview(pod, "app", "u-2", true));
  EXPECT_EQ(dry["response"]["patch"], normal["response"]["patch"]);
  auto metrics = Client(dir_ + "/ca.crt")->Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("tern_webhook_injections_total{outcome=\"dry_run\"} 1"), std::string::npos)
      << metrics->body;
  EXPECT_NE(metrics->body.find("tern_webhook_injections_total{outcome=\"injected\"} 2"), std::string::npos)
      << metrics->body;
  EXPECT_NE(metrics->body.find("tern_webhook_request_duration_seconds_count 3"), std::string::npos);
}

// Every bad input gets a clear answer, and the server keeps serving.
TEST_F(TerndServerTest, BadInputsGetClearAnswers) {
  struct Case {
    std::string body;
    int status;
    std::string message;
  } cases[] = {
      {"{\"kind\": \"AdmissionReview\", ", 400, "body is not valid JSON"},
      {"[1,2]", 400, "must be an AdmissionReview object"},
      {R"({"apiVersion":"admission.k8s.io/v2","kind":"AdmissionReview","request":{"uid":"x"}})", 400,
       "apiVersion: \\\"admission.k8s.io/v2\\\" is not"},
      {R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"})", 400, "request: is required"},
      {R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"kind":{"kind":"Pod"}}})", 400,
       "request.uid: is required"},
      {std::string(300 * 1024, ' '), 413, "request body exceeds"},
      {std::string(5000, '[') + std::string(5000, ']'), 400, "deeper than 100 levels"},
      {"{\"apiVersion\": \"\xff\xfe\"}", 400, "body is not valid JSON"},
  };
  for (const auto& c : cases) {
    auto res = Post(c.body);
    ASSERT_TRUE(res) << c.message;
    EXPECT_EQ(res->status, c.status) << c.message;
    EXPECT_NE(res->body.find(c.message), std::string::npos) << res->body;
  }
  auto wrong_type = Post("{}", "text/plain");
  ASSERT_TRUE(wrong_type);
  EXPECT_EQ(wrong_type->status, 415);

  // Not a Pod: let through untouched, with a warning naming what arrived.
  json deployment_review = {{"apiVersion", "admission.k8s.io/v1"}, {"kind", "AdmissionReview"},
                            {"request", {{"uid", "d1"}, {"kind", {{"group", "apps"}, {"version", "v1"}, {"kind", "Deployment"}}},
                                         {"operation", "CREATE"}, {"object", json::object()}}}};
  json r = PostReview(deployment_review);
  EXPECT_EQ(r["response"]["allowed"], true);
  EXPECT_FALSE(r["response"].contains("patch"));
  EXPECT_NE(r["response"]["warnings"][0].get<std::string>().find("apps/v1 Deployment"), std::string::npos);

  // A Pod that cannot be parsed: refused with the field path.
  json broken = PodCreateReview(json::parse(R"({"metadata":{"name":"p"},"spec":{"containers":"nginx"}})"), "app", "b1");
  r = PostReview(broken);
  EXPECT_EQ(r["response"]["allowed"], false);
  EXPECT_NE(r["response"]["status"]["message"].get<std::string>().find("spec.containers: must be a list, got string"),
            std::string::npos) << r.dump();
  json no_object = PodCreateReview(json::object(), "app", "b2");
  no_object["request"].erase("object");
  r = PostReview(no_object);
  EXPECT_EQ(r["response"]["allowed"], false);
  EXPECT_NE(r["response"]["status"]["message"].get<std::string>().find("request.object"), std::string::npos);

  // Invalid annotation values: refused, each named with its value; nothing half-injected.
  json bad = testing::LoadCorpusDocuments({"bad", "webhook/testdata/bad-annotations.yaml", ""})[0];
  r = PostReview(PodCreateReview(bad, "app", "b3"));
  EXPECT_EQ(r["response"]["allowed"], false);
  EXPECT_FALSE(r["response"].contains("patch"));
  std::string msg = r["response"]["status"]["message"].get<std::string>();
  for (const char* v : {"\"70000\"", "\"10.0.0.0/33\"", "\"MAGIC\"", "\"abc\""}) {
    EXPECT_NE(msg.find(v), std::string::npos) << v << " in " << msg;
  }

  // Still serving.
  auto health = Client(dir_ + "/ca.crt")->Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  auto missing = Client(dir_ + "/ca.crt")->Get("/nope");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
}

template <class F>
bool Eventually(F&& condition) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  return false;
}

TEST_F(TerndServerTest, RotatedCertificateIsServedWithoutRestart) {
  PemPair ca2 = *CreateSelfSigned({.common_name = "rotated CA", .is_ca = true});
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/ca2.crt", ca2.cert_pem).ok());
  EXPECT_FALSE(Client(dir_ + "/ca2.crt")->Get("/healthz")) << "the new CA must not verify the old certificate";
  WriteCert(ca2);
  EXPECT_TRUE(Eventually([&] { return static_cast<bool>(Client(dir_ + "/ca2.crt")->Get("/healthz")); }));
  // A broken rotation (key of another pair) is refused; the rotated certificate stays in use.
  auto other = *IssueCertificate(ca2, {.common_name = "other"});
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/tls.key", other.key_pem).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto res = Client(dir_ + "/ca2.crt")->Get("/readyz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

TEST_F(TerndServerTest, MeshConfigReloadsAndBadReloadKeepsLastGood) {
  json pod = PodFromWorkload(testing::LoadCorpusDocuments({"hello", "compat:hello.yaml", ""})[0], "app");
  auto proxy_image = [&]() -> std::string {
    json r = PostReview(PodCreateReview(pod, "app", "m"));
    auto patch = Base64Decode(r["response"].value("patch", ""));
    if (!patch) return "";
    json patched = pod.patch(json::parse(*patch));
    for (const auto& c : patched["spec"]["initContainers"]) {
      if (c["name"] == "istio-proxy") return c["image"].get<std::string>();
    }
    return "";
  };
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/mesh.yaml", "injection:\n  proxyImage: example/proxy:2\n").ok());
  EXPECT_TRUE(Eventually([&] { return proxy_image() == "example/proxy:2"; }));
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/mesh.yaml", "injection:\n  proxyImage: [broken\n").ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(proxy_image(), "example/proxy:2");
}

}  // namespace
}  // namespace tern::control_plane
