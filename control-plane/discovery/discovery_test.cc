// Discovery's model and the snapshot ternd builds from it: what the sources give is validated
// object by object (a bad one is named with its path and skipped, never fatal), the snapshot is
// one the proxy's own parser accepts, and the folder source follows edits.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>

#include "control-plane/discovery/folder_source.h"
#include "control-plane/push/config_push.h"
#include "control-plane/push/snapshot_builder.h"
#include "core/base/files.h"
#include "core/config/snapshot.h"
#include "core/yaml/yaml_json.h"

namespace tern::control_plane {
namespace {

using nlohmann::json;

std::vector<SourceDocument> Docs(const std::string& yaml) {
  auto docs = ParseYamlDocuments(yaml);
  EXPECT_TRUE(docs.ok()) << docs.status().message();
  std::vector<SourceDocument> out;
  for (size_t i = 0; i < docs->size(); ++i) out.push_back({"test.yaml#" + std::to_string(i), (*docs)[i]});
  return out;
}

const char* kScenario = R"(
apiVersion: v1
kind: Service
metadata: {name: product-service}
spec:
  selector: {app: product-service}
  ports: [{name: http, port: 80, targetPort: web}]
---
apiVersion: v1
kind: Service
metadata: {name: pinned, namespace: other}
spec:
  clusterIP: 10.96.7.7
  selector: {app: pinned}
  ports: [{name: grpc-api, port: 9090, appProtocol: grpc}]
---
apiVersion: v1
kind: Pod
metadata: {name: product-v1, labels: {app: product-service, version: v1}}
spec:
  serviceAccountName: product-service
  containers: [{name: app, ports: [{name: web, containerPort: 8080}]}]
status: {podIP: 10.244.0.11}
---
apiVersion: v1
kind: Pod
metadata: {name: product-v2, labels: {app: product-service, version: v2}}
spec:
  containers: [{name: app, ports: [{name: web, containerPort: 8081}]}]
status:
  podIP: 10.244.0.12
  conditions: [{type: Ready, status: "False"}]
---
apiVersion: v1
kind: Pod
metadata: {name: pending, labels: {app: product-service}}
status: {phase: Pending}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: product-service}
spec:
  hosts: [product-service]
  http:
  - route:
    - {destination: {host: product-service, subset: v1}, weight: 90}
    - {destination: {host: product-service, subset: v2}, weight: 10}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: product-v1}
spec: {}
)";

TEST(DiscoveryModelTest, EachBadObjectIsNamedAndSkippedTheRestKept) {
  std::string yaml = std::string(kScenario) + R"(
---
apiVersion: v1
kind: Service
metadata: {name: broken}
spec:
  ports: [{name: a, port: 70000}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bad-weights}
spec:
  hosts: [x]
  http:
  - route:
    - {destination: {host: x}, weight: 30}
    - {destination: {host: y}, weight: 30}
---
kind: Service
metadata: {name: Not_A_Name}
---
- a list, not an object
---
apiVersion: v1
kind: Service
spec: {}
---
apiVersion: v1
kind: Pod
metadata: {name: bad-labels, labels: {app: 7}}
)";
  auto model = BuildModel(Docs(yaml), "my-app", 3);
  EXPECT_EQ(model->generation, 3u);
  EXPECT_EQ(model->services.size(), 2u);
  EXPECT_EQ(model->pods.size(), 3u);
  EXPECT_EQ(model->resources.size(), 1u);
  ASSERT_EQ(model->ignored.size(), 1u);
  EXPECT_EQ(model->ignored[0].kind, "Deployment");
  EXPECT_EQ(model->services[0].namespace_, "my-app");  // the default namespace filled in
  EXPECT_EQ(model->services[1].namespace_, "other");
  std::vector<std::string> want = {
      "test.yaml#7 Service my-app/broken: spec.ports[0].port: must be a port from 1 to 65535",
      "test.yaml#8 VirtualService my-app/bad-weights: ",  // the Istio parser's own message follows
      "test.yaml#9 Service my-app/Not_A_Name: metadata.name: \"Not_A_Name\" is not a DNS name",
      "test.yaml#10: not an object",
      "test.yaml#11 Service: metadata: is required",
      "test.yaml#12 Pod my-app/bad-labels: metadata.labels[\"app\"]: must be a string",
  };
  ASSERT_EQ(model->problems.size(), want.size()) << ::testing::PrintToString(model->problems);
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(model->problems[i].rfind(want[i], 0), 0u) << model->problems[i];
  EXPECT_NE(model->problems[1].find("weight"), std::string::npos) << model->problems[1];
}

TEST(DiscoveryModelTest, TheSnapshotIsOneTheProxyAcceptsWithEndpointsFromPods) {
  auto model = BuildModel(Docs(kScenario), "my-app", 1);
  json snapshot = BuildProxySnapshot(*model, MeshConfig{}, {"product-v1", "my-app"});
  snapshot["version"] = "1";
  auto parsed = config::ParseSnapshotJson(snapshot);
  ASSERT_TRUE(parsed.ok()) << parsed.status().message() << "\n" << snapshot.dump(2);
  const config::Snapshot& s = **parsed;
  ASSERT_EQ(s.services.size(), 2u);
  const config::Service* product = nullptr;
  for (const auto& svc : s.services) {
    if (svc.hostname == "product-service.my-app.svc.cluster.local") product = &svc;
  }
  ASSERT_NE(product, nullptr);
  ASSERT_EQ(product->cluster_ips.size(), 1u);
  EXPECT_EQ(product->cluster_ips[0].rfind("10.96.", 0), 0u);  // allocated: the folder gave none
  // Endpoints: the pods with an IP its selector picks; the named target port resolved per pod;
  // readiness from the Ready condition; a pod without an IP is none.
  std::map<std::string, const config::Endpoint*> by_address;
  for (const auto& e : s.endpoints) by_address[e.address] = &e;
  ASSERT_EQ(by_address.size(), 2u);
  EXPECT_EQ(by_address["10.244.0.11"]->ports.at("http"), 8080u);
  EXPECT_EQ(by_address["10.244.0.12"]->ports.at("http"), 8081u);
  EXPECT_TRUE(by_address["10.244.0.11"]->ready);
  EXPECT_FALSE(by_address["10.244.0.12"]->ready);
  EXPECT_EQ(by_address["10.244.0.11"]->service_account, "product-service");
  EXPECT_EQ(by_address["10.244.0.11"]->labels.at("version"), "v1");
  // The pinned cluster IP is kept; the proxy's own workload is its pod.
  bool pinned = false;
  for (const auto& svc : s.services) pinned |= !svc.cluster_ips.empty() && svc.cluster_ips[0] == "10.96.7.7";
  EXPECT_TRUE(pinned);
  EXPECT_EQ(s.workload.labels.at("version"), "v1");
  EXPECT_EQ(s.resources.size(), 1u);
  // Stable: the same model gives the same snapshot (no version bump without a change).
  EXPECT_EQ(BuildProxySnapshot(*BuildModel(Docs(kScenario), "my-app", 2), MeshConfig{}, {"product-v1", "my-app"}).dump(),
            BuildProxySnapshot(*model, MeshConfig{}, {"product-v1", "my-app"}).dump());
  // What the config stream sends: the common part serialized once, each proxy's workload (and
  // version) appended, is that same snapshot to the byte.
  const SharedSnapshot shared = BuildSharedSnapshot(*model, MeshConfig{});
  for (const ProxyIdentity& who : {ProxyIdentity{"product-v1", "my-app"}, ProxyIdentity{"nobody", "elsewhere"}}) {
    json whole = BuildProxySnapshot(*model, MeshConfig{}, who);
    EXPECT_EQ(SnapshotText(shared, WorkloadOf(*model, who), ""), whole.dump());
    whole["version"] = "42";
    EXPECT_EQ(SnapshotText(shared, WorkloadOf(*model, who), "42"), whole.dump());
  }
}

// A stream that records what it was sent.
class RecordingStream final : public ResponseStream {
 public:
  bool Send(std::string chunk) override {
    if (!open_) return false;
    sent.push_back(std::move(chunk));
    return true;
  }
  void Close() override { open_ = false; }
  bool open() const override { return open_; }
  std::vector<std::string> sent;

 private:
  bool open_ = true;
};

// Each proxy gets its full snapshot on connect, then a new one (a higher version) only when a
// change touches what it runs from; a stream that ended is dropped; a bad identity is refused.
TEST(ConfigPushTest, SendsEachProxyOnlyWhatChangesItsSnapshot) {
  Logger log(2, LogLevel::kOff);
  Registry metrics;
  auto mesh = std::make_shared<const MeshConfig>();
  ConfigPush push(log, metrics, [&] { return mesh; });
  HttpRequest early{.method = "GET", .target = "/v1/snapshots?namespace=my-app&pod=product-v1", .peer = "10.244.0.11:40000"};
  auto s0 = std::make_shared<RecordingStream>();
  EXPECT_EQ(push.Open(early, s0).status, 503);  // no model yet
  push.ModelChanged(BuildModel(Docs(kScenario), "my-app", 1));
  for (const char* bad : {"/v1/snapshots?pod=x", "/v1/snapshots?namespace=my-app&pod=Bad_Name", "/v1/snapshots"}) {
    auto s = std::make_shared<RecordingStream>();
    HttpResponse r = push.Open(HttpRequest{.method = "GET", .target = bad}, s);
    EXPECT_EQ(r.status, 400) << bad;
    EXPECT_NE(r.body.find("must be DNS names"), std::string::npos) << r.body;
  }
  // A stream that claims a pod it is not (another IP), or one discovery does not know: refused.
  struct Forged {
    const char* target;
    const char* peer;
    const char* error;
  } forged[] = {
      {"/v1/snapshots?namespace=my-app&pod=product-v1", "10.244.0.12:40000",
       "pod my-app/product-v1 is at 10.244.0.11; this stream comes from 10.244.0.12"},
      {"/v1/snapshots?namespace=my-app&pod=ghost", "10.244.0.11:40000", "no pod my-app/ghost is known to discovery"},
      {"/v1/snapshots?namespace=my-app&pod=pending", "10.244.0.13:40000", "pod my-app/pending has no IP yet"},
  };
  for (const auto& f : forged) {
    HttpResponse r = push.Open(HttpRequest{.method = "GET", .target = f.target, .peer = f.peer}, std::make_shared<RecordingStream>());
    EXPECT_EQ(r.status, 403) << f.target;
    EXPECT_NE(r.body.find(f.error), std::string::npos) << r.body;
  }
  auto s1 = std::make_shared<RecordingStream>();
  HttpResponse first = push.Open(early, s1);
  ASSERT_EQ(first.status, 200);
  json snapshot = json::parse(first.body);
  const int v1 = std::stoi(snapshot["version"].get<std::string>());
  EXPECT_TRUE(config::ParseSnapshotJson(snapshot).ok());
  // The same model again (a touched file, nothing changed): nothing sent.
  push.ModelChanged(BuildModel(Docs(kScenario), "my-app", 2));
  EXPECT_TRUE(s1->sent.empty());
  // An endpoint leaves: a new snapshot, a higher version, without that endpoint.
  std::string without_v2 = kScenario;
  without_v2.replace(without_v2.find("podIP: 10.244.0.12"), 18, "phase: Running");
  push.ModelChanged(BuildModel(Docs(without_v2), "my-app", 3));
  ASSERT_EQ(s1->sent.size(), 1u);
  json next = json::parse(s1->sent[0]);
  EXPECT_GT(std::stoi(next["version"].get<std::string>()), v1);
  EXPECT_EQ(next["endpoints"].size(), 1u);
  EXPECT_EQ(push.Proxies().size(), 1u);
  // Its acknowledgements (from its address, on another connection): a refusal is recorded with
  // its reason; a bad ack is refused; an ack from another address counts for no stream.
  auto ack = [&](const json& body, const std::string& peer = "10.244.0.11:40001") {
    return push.Ack(HttpRequest{.method = "POST", .target = "/v1/ack", .body = body.dump(), .peer = peer});
  };
  EXPECT_EQ(ack({{"namespace", "my-app"}, {"pod", "product-v1"}, {"version", next["version"]}, {"error", "forged"}}, "10.244.0.12:5000")
                .status,
            404);
  EXPECT_EQ(push.Proxies()[0]["error"], "");
  EXPECT_EQ(ack({{"namespace", "my-app"}, {"pod", "product-v1"}, {"version", next["version"]}, {"error", "bad weights"}}).status, 200);
  EXPECT_EQ(push.Proxies()[0]["version_acked"], next["version"]);
  EXPECT_EQ(push.Proxies()[0]["error"], "bad weights");
  EXPECT_EQ(ack({{"namespace", "my-app"}, {"pod", "ghost"}, {"version", "1"}}).status, 404);
  EXPECT_EQ(ack({{"pod", "product-v1"}}).status, 400);
  EXPECT_EQ(push.Ack(HttpRequest{.method = "POST", .target = "/v1/ack", .body = "not json"}).status, 400);
  // The proxy left: dropped at the next change.
  s1->Close();
  push.ModelChanged(BuildModel(Docs(kScenario), "my-app", 4));
  EXPECT_EQ(push.Proxies().size(), 0u);
}

TEST(FolderSourceTest, ReadsTheFolderAndFollowsEdits) {
  char tmpl[] = "/tmp/tern-folder-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  std::filesystem::create_directories(dir + "/sub");
  ASSERT_TRUE(WriteFileAtomically(dir + "/kustomization.yaml", "namespace: shop\nresources: [a.yaml]\n").ok());
  ASSERT_TRUE(WriteFileAtomically(dir + "/a.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 80}]}\n").ok());
  ASSERT_TRUE(WriteFileAtomically(dir + "/sub/garbage.yaml", "{ not: [yaml\n").ok());
  ASSERT_TRUE(WriteFileAtomically(dir + "/notes.txt", "not a manifest\n").ok());
  Logger log(2, LogLevel::kOff);
  std::mutex mu;
  std::condition_variable changed;
  std::vector<std::shared_ptr<const Model>> models;
  FolderSource source(dir, log, [&](std::shared_ptr<const Model> m) {
    std::lock_guard<std::mutex> lock(mu);
    models.push_back(m);
    changed.notify_all();
  });
  ASSERT_TRUE(source.Start().ok());
  {
    std::lock_guard<std::mutex> lock(mu);
    ASSERT_EQ(models.size(), 1u);
    ASSERT_EQ(models[0]->services.size(), 1u);
    EXPECT_EQ(models[0]->services[0].namespace_, "shop");
    ASSERT_EQ(models[0]->problems.size(), 1u);
    EXPECT_EQ(models[0]->problems[0].rfind("sub/garbage.yaml: ", 0), 0u) << models[0]->problems[0];
  }
  ASSERT_TRUE(WriteFileAtomically(dir + "/sub/b.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: b}\nspec: {ports: [{port: 81}]}\n").ok());
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(changed.wait_for(lock, std::chrono::seconds(5), [&] { return models.back()->services.size() == 2; }));
    EXPECT_GT(models.back()->generation, 1u);
  }
  std::filesystem::remove(dir + "/a.yaml");
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(changed.wait_for(lock, std::chrono::seconds(5), [&] { return models.back()->services.size() == 1; }));
    EXPECT_EQ(models.back()->services[0].name, "b");
  }
  source.Stop();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tern::control_plane
