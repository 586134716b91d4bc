// ternd on the Kubernetes API (an in-test API server): a config stream must carry its pod's
// projected token, which ternd has the API server review; and a review that waits on a slow API
// server holds up no other client (stream handlers run off ternd's connection workers).
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <future>
#include <thread>

#include "control-plane/server/ternd_server.h"
#include "core/base/files.h"
#include "core/kube/fake_apiserver.h"
#include "core/testing/wait_for.h"
#include "core/tls/x509.h"

namespace tern::control_plane {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using testing_support::WaitFor;

class TerndOnKubernetes : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tern-ternd-kube-XXXXXX";
    dir_ = mkdtemp(tmpl);
    PemPair ca = *CreateSelfSigned({.common_name = "test CA", .is_ca = true});
    PemPair leaf = *IssueCertificate(ca, {.common_name = "ternd", .ip_addresses = {"127.0.0.1"}});
    ASSERT_TRUE(WriteFileAtomically(dir_ + "/ca.crt", ca.cert_pem).ok());
    ASSERT_TRUE(WriteFileAtomically(dir_ + "/tls.crt", leaf.cert_pem).ok());
    ASSERT_TRUE(WriteFileAtomically(dir_ + "/tls.key", leaf.key_pem).ok());
    ASSERT_TRUE(WriteFileAtomically(dir_ + "/kubeconfig", api_.Kubeconfig()).ok());
    // Two pods on this host's loopback (their streams come from 127.0.0.1).
    for (const char* name : {"web-1", "db-1"}) {
      api_.Put(std::string("/api/v1/namespaces/shop/pods/") + name,
               {{"apiVersion", "v1"}, {"kind", "Pod"}, {"metadata", {{"labels", {{"app", name}}}}},
                {"spec", {{"serviceAccountName", std::string(name).substr(0, 2) == "we" ? "web" : "db"}}},
                {"status", {{"podIP", "127.0.0.1"}}}});
    }
    api_.AddToken("web-token", "shop", "web", "web-1", {"istio-ca"});
    api_.AddToken("db-token", "shop", "db", "db-1", {"istio-ca"});
    TerndOptions o;
    o.https.host = "127.0.0.1";
    o.cert_file = dir_ + "/tls.crt";
    o.key_file = dir_ + "/tls.key";
    o.kubeconfig = dir_ + "/kubeconfig";
    auto s = TerndServer::Create(o, log_);
    ASSERT_TRUE(s.ok()) << s.status().message();
    server_ = std::move(s).value();
    thread_ = std::thread([this] { server_->Run(); });
    ASSERT_TRUE(WaitFor([&] {
      auto r = Client()->Get("/debug/resources");
      return r && r->body.find("\"generation\"") != std::string::npos;
    })) << "discovery has a model";
  }
  void TearDown() override {
    if (server_) server_->Stop();
    if (thread_.joinable()) thread_.join();
    std::system(("rm -rf " + dir_).c_str());
  }
  std::unique_ptr<httplib::SSLClient> Client() {
    auto c = std::make_unique<httplib::SSLClient>("127.0.0.1", server_->port());
    c->set_ca_cert_path((dir_ + "/ca.crt").c_str());
    c->enable_server_certificate_verification(true);
    c->set_connection_timeout(5, 0);
    c->set_read_timeout(10, 0);
    return c;
  }
  // Opens pod's stream with `token` ("" for none): the status, and the first line of a 200's body
  // (or the refusal's body); the stream is let go after its first line.
  std::pair<int, std::string> Open(const std::string& pod, const std::string& token) {
    httplib::Headers headers;
    if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
    std::string body;
    int status = 0;
    auto r = Client()->Get(
        "/v1/snapshots?namespace=shop&pod=" + pod, headers,
        [&](const httplib::Response& res) {
          status = res.status;
          return true;
        },
        [&](const char* data, size_t n) {
          body.append(data, n);
          return body.find('\n') == std::string::npos;  // a 200's first snapshot is enough
        });
    if (body.empty() && r) body = r->body;
    return {status, body.substr(0, body.find('\n'))};
  }

  kube::FakeApiServer api_{"ternd-token"};
  Logger log_{2, LogLevel::kError};
  std::string dir_;
  std::unique_ptr<TerndServer> server_;
  std::thread thread_;
};

TEST_F(TerndOnKubernetes, AStreamMustCarryItsOwnPodsToken) {
  auto [ok, snapshot] = Open("web-1", "web-token");
  EXPECT_EQ(ok, 200) << snapshot;
  EXPECT_NE(snapshot.find("\"workload\""), std::string::npos) << snapshot;
  auto [none, why_none] = Open("web-1", "");
  EXPECT_EQ(none, 401);
  EXPECT_NE(why_none.find("a service-account token is required"), std::string::npos) << why_none;
  auto [unknown, why_unknown] = Open("web-1", "forged");
  EXPECT_EQ(unknown, 401);
  EXPECT_NE(why_unknown.find("token refused: [invalid bearer token"), std::string::npos) << why_unknown;
  auto [other, why_other] = Open("web-1", "db-token");
  EXPECT_EQ(other, 403);
  EXPECT_NE(why_other.find("the token is pod shop/db-1's; this request speaks for pod shop/web-1"), std::string::npos)
      << why_other;
  // Reviews are cached: web-token was asked about once, however often it is shown.
  const int reviews = api_.token_reviews();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Open("web-1", "web-token").first, 200);
  EXPECT_EQ(api_.token_reviews(), reviews);
}

TEST_F(TerndOnKubernetes, AReviewWaitingOnASlowApiServerHoldsUpNoOneElse) {
  api_.set_delay(2000ms);
  // Two streams whose tokens ternd has not seen: each waits ~2 s for its review.
  auto slow1 = std::async(std::launch::async, [&] { return Open("web-1", "new-token-1"); });
  auto slow2 = std::async(std::launch::async, [&] { return Open("web-1", "new-token-2"); });
  std::this_thread::sleep_for(200ms);
  // Meanwhile, on ternd's two connection workers, others are answered at once.
  for (int i = 0; i < 5; ++i) {
    auto start = std::chrono::steady_clock::now();
    auto r = Client()->Get("/healthz");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 1000ms) << "a health check waited on a TokenReview";
  }
  EXPECT_EQ(slow1.get().first, 401);
  EXPECT_EQ(slow2.get().first, 401);
}

}  // namespace
}  // namespace tern::control_plane
