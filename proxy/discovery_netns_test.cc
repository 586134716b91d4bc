// The mesh as one system, in network namespaces: ternd reads manifests/examples/ (the seed
// scenario, as shipped) plus the pods' own objects from a folder, and streams each sidecar its
// snapshot over HTTPS. A sidecar started as the injector starts it (no --config: its
// TERN_DISCOVERY_ADDRESS, POD_NAME, POD_NAMESPACE, the mesh root under its files root), behind
// tern-init's capture, learns product-service's endpoints from ternd and splits the app's calls
// 90/10 by the seed's VirtualService. Then the folder is edited and traffic follows; ternd is
// killed and traffic keeps flowing; the sidecar is restarted while ternd is down and still
// routes, from the snapshot it kept. The same story runs twice: ternd on the folder, and ternd on
// the Kubernetes API (an in-test API server in the peer namespace serving the same objects,
// each edit of the folder becoming the API's ADDED, MODIFIED or DELETED, as `kubectl apply
// --prune` would make them).
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>

#include <map>
#include <set>

#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "core/base/ascii.h"
#include "core/base/files.h"
#include "core/capture/testing/sh.h"
#include "core/kube/fake_apiserver.h"
#include "core/yaml/yaml_json.h"
#include "core/tls/x509.h"
#include "proxy/testing/proxy_in_pod.h"

namespace tern::proxy::testing_support {
namespace {

namespace fs = std::filesystem;

constexpr const char* kTernd = "10.200.0.2";  // ternd listens in the peer namespace
constexpr uint16_t kTerndPort = 15012;
constexpr const char* kAppToken = "app-1-projected-token";

class DiscoveryNetnsTest : public ::testing::Test {
 protected:
  // Where ternd reads the mesh from: the folder (here) or the Kubernetes API (KubeDiscovery).
  virtual void PrepareSource() {}
  virtual std::vector<std::string> SourceArgs() { return {"--config-folder", folder_}; }
  // Why ternd refuses a stream from this pod (app-1, with its own token) claiming product-v1.
  virtual std::string ForgedClaimRefusal() {
    return "pod my-app/product-v1 is at 10.200.0.2; this stream comes from 10.200.0.1";
  }
  // One manifest file of the mesh, written (or rewritten) in the folder.
  virtual void Publish(const std::string& file, const std::string& yaml) {
    ASSERT_TRUE(WriteFileAtomically(folder_ + "/" + file, yaml).ok());
  }

  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to create network namespaces";
    net_ = std::make_unique<nettest::PodAndPeer>("dn");
    ASSERT_EQ(net_->error(), "");
    char tmpl[] = "/tmp/tern-discovery-XXXXXX";
    dir_ = mkdtemp(tmpl);
    chmod(dir_.c_str(), 0755);
    // The mesh root and ternd's serving certificate (its name: the address the sidecar is given).
    PemPair ca = *CreateSelfSigned({.common_name = "mesh root", .is_ca = true});
    PemPair leaf = *IssueCertificate(ca, {.common_name = "ternd", .dns_names = {"ternd.tern-system.svc"}, .ip_addresses = {kTernd}});
    ASSERT_TRUE(WriteFileAtomically(dir_ + "/tls.crt", leaf.cert_pem).ok());
    ASSERT_TRUE(WriteFileAtomically(dir_ + "/tls.key", leaf.key_pem, 0600).ok());
    ASSERT_TRUE(WriteFileAtomically(dir_ + "/ca.crt", ca.cert_pem).ok());
    root_ = dir_ + "/pod-root";
    ASSERT_TRUE(nettest::Sh("mkdir -p " + root_ + "/var/run/secrets/istio " + root_ + "/var/run/secrets/tokens " + root_ +
                            "/var/lib/istio/data " + root_ + "/etc/istio/pod && chown 1337:1337 " + root_ +
                            "/var/lib/istio/data && chmod -R a+rX " + dir_));
    // app-1's projected token, as the kubelet mounts it (ternd asks the API server whose it is).
    ASSERT_TRUE(WriteFileAtomically(root_ + "/var/run/secrets/tokens/istio-token", std::string(kAppToken) + "\n", 0644).ok());
    ASSERT_TRUE(WriteFileAtomically(root_ + "/var/run/secrets/istio/root-cert.pem", ca.cert_pem, 0644).ok());
    // The folder: the seed scenario as shipped, and the pods the cluster would report.
    folder_ = dir_ + "/mesh";
    fs::create_directories(folder_);
    ASSERT_NO_FATAL_FAILURE(PrepareSource());
    for (const auto& f : fs::directory_iterator(std::string(TERN_SOURCE_DIR) + "/manifests/examples")) {
      ASSERT_NO_FATAL_FAILURE(Publish(f.path().filename().string(), *ReadFile(f.path().string())));
    }
    WritePods(true);
    ASSERT_TRUE(nettest::Sh("ip netns exec " + net_->pod.name() + " " + kBin +
                            "/init/tern-init -p 15001 -z 15006 -u 1337 -g 1337 -m REDIRECT -i '*' -x '' -b '*' "
                            "-d 15090,15021,15020"));
    StartTernd();
    StartSidecar();
  }
  void TearDown() override {
    if (sidecar_ > 0) Stop(sidecar_);
    if (ternd_ > 0) Stop(ternd_);
    if (!dir_.empty()) std::system(("rm -rf " + dir_).c_str());
  }

  // product-service v1 at 10.200.0.2, v2 at 10.200.0.3 (when `with_v2`), and the client pod.
  void WritePods(bool with_v2) {
    std::string pods =
        "apiVersion: v1\nkind: Pod\nmetadata: {name: app-1, labels: {app: app}}\n"
        "spec: {serviceAccountName: app}\nstatus: {podIP: 10.200.0.1}\n---\n"
        "apiVersion: v1\nkind: Pod\nmetadata: {name: product-v1, labels: {app: product-service, version: v1}}\n"
        "spec: {serviceAccountName: product-service}\nstatus: {podIP: 10.200.0.2}\n";
    if (with_v2) {
      pods += "---\napiVersion: v1\nkind: Pod\nmetadata: {name: product-v2, labels: {app: product-service, version: v2}}\n"
              "spec: {serviceAccountName: product-service}\nstatus: {podIP: 10.200.0.3}\n";
    }
    Publish("pods.yaml", pods);
  }
  // The seed's VirtualService with other weights for v1 and v2.
  void SetWeights(int v1, int v2) {
    std::string vs = *ReadFile(std::string(TERN_SOURCE_DIR) + "/manifests/examples/virtualservice.yaml");
    size_t a = vs.find("weight: 90"), b = vs.find("weight: 10");
    ASSERT_NE(a, std::string::npos);
    ASSERT_NE(b, std::string::npos);
    vs.replace(b, 10, "weight: " + std::to_string(v2));
    vs.replace(a, 10, "weight: " + std::to_string(v1));
    Publish("virtualservice.yaml", vs);
  }
  void StartTernd() {
    std::vector<std::string> argv = {"/usr/bin/env", "ip", "netns", "exec", net_->peer.name(), kBin + "/control-plane/ternd",
                                     "--listen", std::string(kTernd) + ":" + std::to_string(kTerndPort), "--tls-cert",
                                     dir_ + "/tls.crt", "--tls-key", dir_ + "/tls.key"};
    for (auto& arg : SourceArgs()) argv.push_back(arg);
    ternd_ = Spawn(argv, {{"PATH", "/usr/sbin:/usr/bin:/sbin:/bin"}}, dir_ + "/ternd.log");
    ASSERT_GT(ternd_, 0);
  }
  // As injected: uid 1337, the injected flags, the environment the kubelet resolves; no --config.
  void StartSidecar() {
    sidecar_ = Spawn({"/usr/bin/env", "ip", "netns", "exec", net_->pod.name(), "setpriv", "--reuid", "1337", "--regid",
                      "1337", "--clear-groups", kBin + "/proxy/tern-proxy", "--domain", "my-app.svc.cluster.local",
                      "--log-level", "info", "--concurrency", "2", "--status-port", "15020"},
                     {{"PATH", "/usr/sbin:/usr/bin:/sbin:/bin"},
                      {"TERN_FILES_ROOT", root_},
                      {"TERN_DISCOVERY_ADDRESS", std::string(kTernd) + ":" + std::to_string(kTerndPort)},
                      {"CA_ADDR", std::string(kTernd) + ":" + std::to_string(kTerndPort)},
                      {"POD_NAME", "app-1"},
                      {"POD_NAMESPACE", "my-app"},
                      {"SERVICE_ACCOUNT", "app"},
                      {"INSTANCE_IP", "10.200.0.1"},
                      {"ISTIO_META_INTERCEPTION_MODE", "REDIRECT"}},
                     dir_ + "/proxy.log");
    ASSERT_GT(sidecar_, 0);
  }
  std::string InPod(uint16_t port, const std::string& path) {
    int fd = nettest::ConnectSocket(net_->pod, {"127.0.0.1", port}, 0);
    if (fd < 0) return "";
    std::string answer = Exchange(fd, "GET " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    close(fd);
    return answer;
  }
  bool Ready() { return InPod(15021, "/healthz/ready").rfind("HTTP/1.1 200", 0) == 0; }
  // product-service's cluster IP, as ternd gave it to the sidecar.
  std::string ClusterIp() {
    std::string dump = InPod(15000, "/config_dump");
    size_t body = dump.find("\r\n\r\n");
    if (body == std::string::npos) return "";
    auto doc = nlohmann::json::parse(dump.substr(body + 4), nullptr, false);
    if (doc.is_discarded()) return "";
    for (const auto& s : doc["snapshot"].value("services", nlohmann::json::array())) {
      if (s.value("hostname", "") == "product-service.my-app.svc.cluster.local") return s["clusterIPs"][0];
    }
    return "";
  }
  // One call by the app (uid 1000) on a connection of its own: which backend answered, or the
  // status line when none did.
  std::string Call(const std::string& ip) {
    int fd = nettest::ConnectSocket(net_->pod, {ip, 80}, 1000);
    if (fd < 0) return "no connection";
    std::string answer = Exchange(fd, "GET /products HTTP/1.1\r\nHost: product-service\r\nConnection: close\r\n\r\n");
    close(fd);
    if (answer.find("product-v1") != std::string::npos) return "v1";
    if (answer.find("product-v2") != std::string::npos) return "v2";
    return answer.substr(0, answer.find("\r\n"));
  }
  std::map<std::string, int> Calls(const std::string& ip, int n) {
    std::map<std::string, int> seen;
    for (int i = 0; i < n; ++i) ++seen[Call(ip)];
    return seen;
  }
  // Polls until `n` calls in a row all satisfy `ok`; the time it took, or -1 after `limit`.
  template <class F>
  long FollowsWithin(const std::string& ip, F ok, std::chrono::milliseconds limit) {
    auto start = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - start < limit) {
      auto seen = Calls(ip, 10);
      if (ok(seen)) {
        return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
      }
      std::this_thread::sleep_for(20ms);
    }
    return -1;
  }
  std::string Logs() { return "ternd:\n" + *ReadFile(dir_ + "/ternd.log") + "\nproxy:\n" + *ReadFile(dir_ + "/proxy.log"); }

  // The whole story, whatever the source: ready, the canary, edits followed, ternd gone.
  void RunTheStory();
  using Claim = std::function<tern::testing_support::ProcessResult(const std::string& pod, const std::string& token)>;
  // What a stream's token changes (nothing with the folder, which asks none).
  virtual void ExpectTokensChecked(const Claim&) {}

  std::unique_ptr<nettest::PodAndPeer> net_;
  std::string dir_, root_, folder_;
  pid_t ternd_ = -1, sidecar_ = -1;
};

// ternd on the Kubernetes API: the in-test API server runs in the peer namespace (its listening
// socket made there), with ternd's kubeconfig pointing at it. Each manifest file published is
// applied as `kubectl apply --prune` would: its objects PUT at their REST paths (the Istio kinds
// at v1, as the API server serves every version of one object), and the objects it no longer
// has deleted.
class KubeDiscovery : public DiscoveryNetnsTest {
 protected:
  void PrepareSource() override {
    std::thread([this] {
      int nsfd = open(net_->peer.path().c_str(), O_RDONLY | O_CLOEXEC);
      if (nsfd >= 0 && setns(nsfd, CLONE_NEWNET) == 0) api_ = std::make_unique<kube::FakeApiServer>("ternd-token");
      if (nsfd >= 0) close(nsfd);
    }).join();
    ASSERT_TRUE(api_);
    api_->AddToken(kAppToken, "my-app", "app", "app-1", {"istio-ca"});
    ASSERT_TRUE(WriteFileAtomically(dir_ + "/kubeconfig", api_->Kubeconfig(), 0600).ok());
  }
  std::vector<std::string> SourceArgs() override { return {"--kubeconfig", dir_ + "/kubeconfig"}; }
  std::string ForgedClaimRefusal() override {
    return "the token is pod my-app/app-1's; this request speaks for pod my-app/product-v1";
  }
  // No token is 401, a token the API server does not know 401 with its reason; app-1's own
  // token for app-1 is what the sidecar itself sends (its stream is SYNCED above).
  void ExpectTokensChecked(const Claim& claim) override {
    auto none = claim("app-1", "");
    EXPECT_NE(none.out.find("HTTP/1.1 401"), std::string::npos) << none.out << none.err;
    EXPECT_NE(none.out.find("a service-account token is required"), std::string::npos) << none.out;
    auto unknown = claim("app-1", "made-up");
    EXPECT_NE(unknown.out.find("HTTP/1.1 401"), std::string::npos) << unknown.out;
    EXPECT_NE(unknown.out.find("token refused: [invalid bearer token"), std::string::npos) << unknown.out;
    // app-1's token, reviewed once however often it was shown (stream, acks, the claim), and the
    // made-up one; no token is no review.
    EXPECT_EQ(api_->token_reviews(), 2);
  }
  void Publish(const std::string& file, const std::string& yaml) override {
    if (file == "kustomization.yaml") return;
    auto docs = ParseYamlDocuments(yaml);
    ASSERT_TRUE(docs.ok()) << file << ": " << docs.status().message();
    std::set<std::string> now;
    for (const auto& doc : *docs) {
      if (!doc.is_object()) continue;
      const std::string path = RestPath(doc);
      if (path.empty()) continue;  // a kind ternd does not read (Deployments, ServiceAccounts)
      api_->Put(path, doc);
      now.insert(path);
    }
    for (const auto& gone : published_[file]) {
      if (!now.count(gone)) api_->Delete(gone);
    }
    published_[file] = now;
  }
  void TearDown() override {
    DiscoveryNetnsTest::TearDown();
    api_.reset();
  }

  // Where the API server keeps `doc` ("" for kinds ternd does not watch). Namespaced objects
  // without a namespace are in my-app, the examples' kustomization's namespace.
  static std::string RestPath(const nlohmann::json& doc) {
    const std::string kind = doc.value("kind", ""), api_version = doc.value("apiVersion", "");
    const std::string name = doc["metadata"].value("name", ""), ns = doc["metadata"].value("namespace", "my-app");
    if (kind == "Namespace") return "/api/v1/namespaces/" + name;
    if (kind == "Service" || kind == "Pod") return "/api/v1/namespaces/" + ns + "/" + AsciiLower(kind) + "s/" + name;
    const std::string group = api_version.substr(0, api_version.find('/'));
    if (group != "networking.istio.io" && group != "security.istio.io") return "";
    std::string plural = AsciiLower(kind);
    plural = plural.back() == 'y' ? plural.substr(0, plural.size() - 1) + "ies" : plural + "s";
    return "/apis/" + group + "/v1/namespaces/" + ns + "/" + plural + "/" + name;
  }

  std::unique_ptr<kube::FakeApiServer> api_;
  std::map<std::string, std::set<std::string>> published_;  // by file: the REST paths it made
};

TEST_F(DiscoveryNetnsTest, TheSidecarRoutesByWhatTerndStreamsAndKeepsItWhenTerndIsGone) { RunTheStory(); }
TEST_F(KubeDiscovery, TheSidecarRoutesByWhatTheKubernetesApiSaysAndKeepsItWhenTerndIsGone) {
  RunTheStory();
  EXPECT_GE(api_->watch_requests(), 7) << "every kind watched";
}

void DiscoveryNetnsTest::RunTheStory() {
  Backend v1(net_->peer, {"10.200.0.2", 8080}, "product-v1");
  Backend v2(net_->peer, {"10.200.0.3", 8080}, "product-v2");
  ASSERT_TRUE(v1.ok() && v2.ok());
  // Ready once ternd's first snapshot is applied.
  bool ready = false;
  for (int i = 0; i < 200 && !ready; ++i) {
    ready = Ready();
    if (!ready) std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(ready) << Logs();
  const std::string ip = ClusterIp();
  ASSERT_FALSE(ip.empty()) << Logs();
  // ternctl sees it: the version sent, acknowledged by the sidecar; and the snapshot it runs.
  auto ternctl = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {"/usr/bin/env", "ip", "netns", "exec", net_->peer.name(), kBin + "/webhook/ternctl"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--ternd", std::string(kTernd) + ":" + std::to_string(kTerndPort), "--ca", dir_ + "/ca.crt"});
    return tern::testing_support::RunProcess(argv, {{"PATH", "/usr/sbin:/usr/bin:/sbin:/bin"}}, "", 10s);
  };
  std::string status;
  for (int i = 0; i < 50 && status.find("SYNCED") == std::string::npos; ++i) {
    status = ternctl({"proxy-status"}).out;
    if (status.find("SYNCED") == std::string::npos) std::this_thread::sleep_for(100ms);
  }
  EXPECT_NE(status.find("app-1.my-app"), std::string::npos) << status;
  EXPECT_NE(status.find("SYNCED"), std::string::npos) << status << Logs();
  std::cout << status;
  auto config = ternctl({"proxy-config", "app-1.my-app"});
  EXPECT_EQ(config.exit_code, 0) << config.err;
  EXPECT_NE(config.out.find("\"hostname\": \"product-service.my-app.svc.cluster.local\""), std::string::npos) << config.out;
  // A stream from this pod, with its own token, claiming to be product-v1 (at 10.200.0.2):
  // refused (by its token with the Kubernetes source, by name and IP with the folder).
  auto claim = [&](const std::string& pod, const std::string& token) {
    const std::string script =
        "import socket, ssl, sys\n"
        "ctx = ssl.create_default_context(cafile=sys.argv[1])\n"
        "s = ctx.wrap_socket(socket.create_connection(('10.200.0.2', 15012), timeout=5), server_hostname='10.200.0.2')\n"
        "auth = ('Authorization: Bearer ' + sys.argv[3] + '\\r\\n') if sys.argv[3] else ''\n"
        "s.sendall(('GET /v1/snapshots?namespace=my-app&pod=' + sys.argv[2] + ' HTTP/1.1\\r\\nHost: ternd\\r\\n' + auth + "
        "'\\r\\n').encode())\n"
        "print(s.recv(4096).decode())\n";
    return tern::testing_support::RunProcess(
        {"/usr/bin/env", "ip", "netns", "exec", net_->pod.name(), "setpriv", "--reuid", "1337", "--regid", "1337",
         "--clear-groups", "/usr/bin/python3", "-c", script, dir_ + "/ca.crt", pod, token},
        {{"PATH", "/usr/bin:/bin"}}, "", 10s);
  };
  auto forged = claim("product-v1", kAppToken);
  EXPECT_NE(forged.out.find("HTTP/1.1 403"), std::string::npos) << forged.out << forged.err;
  EXPECT_NE(forged.out.find(ForgedClaimRefusal()), std::string::npos) << forged.out;
  ExpectTokensChecked(claim);
  auto unknown = ternctl({"proxy-config", "nobody.my-app"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("no connected proxy my-app/nobody"), std::string::npos) << unknown.err;

  // The seed's canary: 90/10.
  auto split = Calls(ip, 200);
  EXPECT_EQ(split["v1"] + split["v2"], 200) << ::testing::PrintToString(split) << Logs();
  EXPECT_GE(split["v2"], 5) << ::testing::PrintToString(split);
  EXPECT_LE(split["v2"], 40) << ::testing::PrintToString(split);

  // The folder edited: all to v2. Traffic follows within a second.
  SetWeights(0, 100);
  long to_v2 = FollowsWithin(ip, [](auto& seen) { return seen["v2"] == 10; }, 5s);
  EXPECT_GE(to_v2, 0) << Logs();
  EXPECT_LT(to_v2, 1000) << "ms from the edit to v2 only";
  // 50/50, then v2 scaled to zero: its share finds no endpoint (503, as Istio answers for an
  // empty subset) and v1 keeps its half.
  SetWeights(50, 50);
  EXPECT_GE(FollowsWithin(ip, [](auto& seen) { return seen["v1"] > 0 && seen["v2"] > 0; }, 5s), 0);
  WritePods(false);
  long v2_gone = FollowsWithin(
      ip, [](auto& seen) { return seen["v2"] == 0 && seen["v1"] > 0 && seen["v1"] < 10; }, 5s);
  EXPECT_GE(v2_gone, 0) << Logs();
  EXPECT_LT(v2_gone, 1000);
  std::cout << "traffic followed " << SourceArgs()[0] << ": weights in " << to_v2 << " ms, v2 scaled to zero in " << v2_gone << " ms\n";

  // ternd dies: the sidecar keeps its last snapshot, traffic keeps flowing.
  SetWeights(100, 0);
  EXPECT_GE(FollowsWithin(ip, [](auto& seen) { return seen["v1"] == 10; }, 5s), 0) << Logs();
  Stop(ternd_);
  ternd_ = -1;
  EXPECT_EQ(Calls(ip, 20)["v1"], 20);
  EXPECT_TRUE(Ready());
  // The sidecar restarts while ternd is down: ready and routing from the snapshot it kept.
  Stop(sidecar_);
  StartSidecar();
  ready = false;
  for (int i = 0; i < 200 && !ready; ++i) {
    ready = Ready();
    if (!ready) std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(ready) << Logs();
  EXPECT_EQ(Calls(ip, 20)["v1"], 20) << Logs();
  EXPECT_NE(ReadFile(dir_ + "/proxy.log")->find("kept snapshot loaded"), std::string::npos);
  // And ternd back: the stream resumes (a change reaches the sidecar again).
  StartTernd();
  SetWeights(0, 100);
  WritePods(true);
  EXPECT_GE(FollowsWithin(ip, [](auto& seen) { return seen["v2"] == 10; }, 20s), 0) << Logs();
}

}  // namespace
}  // namespace tern::proxy::testing_support
