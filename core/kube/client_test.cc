#include "core/kube/client.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "core/base/base64.h"
#include "core/base/files.h"
#include "core/kube/fake_apiserver.h"
#include "core/kube/https_get.h"

namespace tern::kube {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

const json kPod = json::parse(R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1","namespace":"shop",
  "annotations":{"sidecar.istio.io/status":"{}"}},"spec":{"containers":[{"name":"web"}]}})");

ClusterConfig ConfigFor(const FakeApiServer& api, const std::string& token) {
  return ClusterConfig{"127.0.0.1", api.port(), api.ca_pem(), token, "", ""};
}

TEST(KubeClient, GetsObjectsAndReportsApiErrors) {
  FakeApiServer api("s3cret");
  api.Put("/api/v1/namespaces/shop/pods/web-1", kPod);
  auto client = Client::Create(ConfigFor(api, "s3cret"), 2000ms);
  ASSERT_TRUE(client.ok()) << client.status().message();
  auto pod = (*client)->Get("/api/v1/namespaces/shop/pods/web-1");
  ASSERT_TRUE(pod.ok()) << pod.status().message();
  EXPECT_EQ(pod->status, 200);
  json expected = kPod;  // as stored: the server stamps every object with its version
  expected["metadata"]["resourceVersion"] = pod->body["metadata"].value("resourceVersion", "");
  EXPECT_FALSE(expected["metadata"]["resourceVersion"].get<std::string>().empty());
  EXPECT_EQ(pod->body, expected);
  auto missing = (*client)->Get("/api/v1/namespaces/shop/pods/nope");
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(missing->message(), "\"nope\" not found");

  auto wrong_token = Client::Create(ConfigFor(api, "guess"), 2000ms);
  ASSERT_TRUE(wrong_token.ok());
  auto denied = (*wrong_token)->Get("/api/v1/namespaces/shop/pods/web-1");
  ASSERT_TRUE(denied.ok());
  EXPECT_EQ(denied->status, 401);
}

TEST(KubeClient, AnotherCaIsRefused) {
  FakeApiServer api("t");
  FakeApiServer other("t");
  auto client = Client::Create(ClusterConfig{"127.0.0.1", api.port(), other.ca_pem(), "t", "", ""}, 2000ms);
  ASSERT_TRUE(client.ok());
  auto r = (*client)->Get("/api/v1/namespaces/shop/pods/web-1");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("GET /api/v1/namespaces/shop/pods/web-1"), std::string::npos);
}

TEST(KubeClient, SlowOrDownApiServerCostsABoundedWait) {
  FakeApiServer api("t");
  api.set_delay(1500ms);
  auto client = Client::Create(ConfigFor(api, "t"), 300ms);
  ASSERT_TRUE(client.ok());
  auto start = std::chrono::steady_clock::now();
  auto r = (*client)->Get("/api/v1/namespaces/shop/pods/web-1");
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_LT(took, 1400ms) << "the client gave up at its deadline, before the slow answer";

  int port = api.port();
  ClusterConfig down{"127.0.0.1", port, api.ca_pem(), "t", "", ""};
  {
    FakeApiServer gone("t");  // a port that was listening and is now closed
    down.port = gone.port();
  }
  auto c2 = Client::Create(down, 300ms);
  ASSERT_TRUE(c2.ok());
  EXPECT_FALSE((*c2)->Get("/api").ok());
}

TEST(KubeClient, AHostNameIsCheckedAgainstTheCertificatesNames) {
  FakeApiServer api("t");
  api.Put("/api/v1/namespaces/shop/pods/web-1", kPod);
  auto client = Client::Create(ClusterConfig{"localhost", api.port(), api.ca_pem(), "t", "", ""}, 2000ms);
  ASSERT_TRUE(client.ok());
  auto r = (*client)->Get("/api/v1/namespaces/shop/pods/web-1");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->status, 200);
}

TEST(HttpResponse, FramingByLengthChunksOrClose) {
  auto r = ParseHttpResponse("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\ncontent-length: 7\r\n\r\n{\"a\":1}");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "{\"a\":1}");
  r = ParseHttpResponse("HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n9\r\n:1234567}\r\n0\r\n\r\n");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(r->body, "{\"a\":1234567}");
  r = ParseHttpResponse("HTTP/1.0 200 OK\r\n\r\nuntil close");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->body, "until close");
}

TEST(HttpResponse, BrokenAnswersAreErrors) {
  EXPECT_EQ(ParseHttpResponse("").status().message(), "the response has no complete header");
  EXPECT_EQ(ParseHttpResponse("SSH-2.0\r\n\r\n").status().message(), "the response does not start with HTTP/");
  EXPECT_EQ(ParseHttpResponse("HTTP/1.1 2x0 OK\r\n\r\n").status().message(), "malformed status code");
  EXPECT_EQ(ParseHttpResponse("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort").status().message(), "truncated body");
  EXPECT_EQ(ParseHttpResponse("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n").status().message(),
            "malformed Content-Length");
  EXPECT_EQ(ParseHttpResponse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").status().message(),
            "chunked body: malformed chunk size \"zz\"");
  EXPECT_EQ(ParseHttpResponse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc").status().message(),
            "truncated chunked body");
}

TEST(KubeClient, BadPemIsRefusedAtCreation) {
  EXPECT_FALSE(Client::Create(ClusterConfig{"127.0.0.1", 1, "not pem", "", "", ""}, 100ms).ok());
  EXPECT_FALSE(Client::Create(ClusterConfig{"127.0.0.1", 1, "", "", "junk", "junk"}, 100ms).ok());
}

class KubeconfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tern-kubeconfig-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }
  std::string dir_;
};

TEST_F(KubeconfigTest, CurrentContextWithInlineCaAndToken) {
  FakeApiServer api("tok");
  api.Put("/api/v1/namespaces/shop/pods/web-1", kPod);
  std::string cfg = "apiVersion: v1\nkind: Config\ncurrent-context: ctx\n"
                    "clusters:\n- name: other\n  cluster: {server: https://10.9.9.9:6443}\n"
                    "- name: local\n  cluster:\n    server: https://127.0.0.1:" + std::to_string(api.port()) + "\n"
                    "    certificate-authority-data: " + Base64Encode(api.ca_pem()) + "\n"
                    "contexts:\n- name: ctx\n  context: {cluster: local, user: cni}\n"
                    "users:\n- name: cni\n  user: {token: tok}\n";
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/kubeconfig", cfg).ok());
  auto c = LoadKubeconfig(dir_ + "/kubeconfig");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->host, "127.0.0.1");
  EXPECT_EQ(c->port, api.port());
  auto client = Client::Create(*c, 2000ms);
  ASSERT_TRUE(client.ok());
  auto pod = (*client)->Get("/api/v1/namespaces/shop/pods/web-1");
  ASSERT_TRUE(pod.ok());
  EXPECT_EQ(pod->status, 200);
}

TEST_F(KubeconfigTest, ErrorsNameTheField) {
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/a", "current-context: x\ncontexts: []\n").ok());
  EXPECT_EQ(LoadKubeconfig(dir_ + "/a").status().message(), dir_ + "/a: contexts: no context named \"x\"");
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/b", "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n"
                                               "clusters: [{name: c, cluster: {server: http://plain:80}}]\n").ok());
  EXPECT_EQ(LoadKubeconfig(dir_ + "/b").status().message(),
            dir_ + "/b: clusters[c].server: \"http://plain:80\" is not an https:// URL");
  EXPECT_FALSE(LoadKubeconfig(dir_ + "/missing").ok());
}

TEST_F(KubeconfigTest, InClusterConfigFromTheServiceAccountMount) {
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/token", "abc\n").ok());
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/ca.crt", "PEM").ok());
  auto env = [](const std::string& k) -> std::optional<std::string> {
    if (k == "KUBERNETES_SERVICE_HOST") return "10.96.0.1";
    if (k == "KUBERNETES_SERVICE_PORT") return "443";
    return std::nullopt;
  };
  auto c = InClusterConfig(env, dir_);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->host, "10.96.0.1");
  EXPECT_EQ(c->token, "abc");
  auto none = InClusterConfig([](const std::string&) { return std::nullopt; }, dir_);
  EXPECT_FALSE(none.ok());
}

}  // namespace
}  // namespace tern::kube
