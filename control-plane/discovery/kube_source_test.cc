// KubeSource against FakeApiServer's list and watch: the first model waits for every kind, each
// kind of change reaches a new model, a dropped watch loses nothing, and a resource with an
// invalid field is skipped with its field path while the rest is used.
#include "control-plane/discovery/kube_source.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>

#include "core/kube/fake_apiserver.h"
#include "core/testing/wait_for.h"

namespace tern::control_plane {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

using testing_support::WaitFor;

json Meta(const std::string& name, json labels = json::object()) {
  return {{"name", name}, {"namespace", "shop"}, {"labels", std::move(labels)},
          {"managedFields", json::array({{{"manager", "kubectl"}}})}};
}

json ProductService() {
  return {{"apiVersion", "v1"}, {"kind", "Service"}, {"metadata", Meta("product")},
          {"spec", {{"clusterIP", "10.96.0.20"}, {"selector", {{"app", "product"}}}, {"ports", {{{"name", "http"}, {"port", 8080}}}}}}};
}
json Pod(const std::string& name, const std::string& version, const std::string& ip) {
  return {{"apiVersion", "v1"}, {"kind", "Pod"}, {"metadata", Meta(name, {{"app", "product"}, {"version", version}})},
          {"spec", {{"serviceAccountName", "product"}}}, {"status", {{"podIP", ip}, {"phase", "Running"}}}};
}
json Rule(const std::string& host) {
  return {{"apiVersion", "networking.istio.io/v1"}, {"kind", "DestinationRule"}, {"metadata", Meta(host)},
          {"spec", {{"host", host}, {"subsets", {{{"name", "v1"}, {"labels", {{"version", "v1"}}}}}}}}};
}

const std::string kServices = "/api/v1/namespaces/shop/services/";
const std::string kPods = "/api/v1/namespaces/shop/pods/";
const std::string kRules = "/apis/networking.istio.io/v1/namespaces/shop/destinationrules/";
const std::string kVirtualServices = "/apis/networking.istio.io/v1/namespaces/shop/virtualservices/";

class KubeSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    api_.Put(kServices + "product", ProductService());
    api_.Put(kPods + "product-v1", Pod("product-v1", "v1", "10.1.0.11"));
    api_.Put("/api/v1/namespaces/shop", {{"apiVersion", "v1"}, {"kind", "Namespace"},
                                         {"metadata", {{"name", "shop"}, {"labels", {{"istio-injection", "enabled"}}}}}});
    auto client = kube::Client::Create(kube::ClusterConfig{"127.0.0.1", api_.port(), api_.ca_pem(), "t", "", ""}, 2000ms);
    ASSERT_TRUE(client.ok());
    client_ = std::move(*client);
    kube::ReflectorOptions options;
    options.backoff_initial = 50ms;
    options.backoff_max = 200ms;
    source_ = std::make_unique<KubeSource>(*client_, "https://127.0.0.1", log_, [this](std::shared_ptr<const Model> m) {
      std::lock_guard<std::mutex> lock(mu_);
      models_.push_back(std::move(m));
    }, options);
  }
  void TearDown() override { source_->Stop(); }

  std::shared_ptr<const Model> Last() {
    std::lock_guard<std::mutex> lock(mu_);
    return models_.empty() ? nullptr : models_.back();
  }
  size_t Models() {
    std::lock_guard<std::mutex> lock(mu_);
    return models_.size();
  }
  // "kind ns/name" of every object the last model uses, sorted.
  std::string Used() {
    auto m = Last();
    if (!m) return "(none)";
    std::vector<std::string> names;
    for (const auto* list : {&m->services, &m->pods, &m->resources}) {
      for (const auto& o : *list) names.push_back(o.kind + " " + o.namespace_ + "/" + o.name);
    }
    std::sort(names.begin(), names.end());
    std::string out;
    for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
    return out;
  }
  bool Becomes(const std::string& used) {
    bool ok = WaitFor([&] { return Used() == used; });
    EXPECT_EQ(Used(), used);
    return ok;
  }

  kube::FakeApiServer api_{"t"};
  std::unique_ptr<kube::Client> client_;
  Logger log_{2, LogLevel::kError};
  std::unique_ptr<KubeSource> source_;
  std::mutex mu_;
  std::vector<std::shared_ptr<const Model>> models_;
};

TEST_F(KubeSourceTest, EveryKindOfChangeReachesANewModel) {
  ASSERT_TRUE(source_->Start().ok());
  ASSERT_TRUE(Becomes("Pod shop/product-v1, Service shop/product"));
  EXPECT_EQ(Models(), 1u) << "one first model, once every kind was listed";
  EXPECT_EQ(Last()->ignored.size(), 1u) << "the namespace";
  EXPECT_FALSE(Last()->pods[0].doc["metadata"].contains("managedFields")) << "trimmed as it arrives";

  api_.Put(kPods + "product-v2", Pod("product-v2", "v2", "10.1.0.12"));
  ASSERT_TRUE(Becomes("Pod shop/product-v1, Pod shop/product-v2, Service shop/product"));
  api_.Put(kRules + "product", Rule("product"));
  ASSERT_TRUE(Becomes("DestinationRule shop/product, Pod shop/product-v1, Pod shop/product-v2, Service shop/product"));
  api_.Delete(kPods + "product-v1");
  ASSERT_TRUE(Becomes("DestinationRule shop/product, Pod shop/product-v2, Service shop/product"));
  // A pod's new IP (a restart) is in the model.
  api_.Put(kPods + "product-v2", Pod("product-v2", "v2", "10.1.0.99"));
  EXPECT_TRUE(WaitFor([&] { return Last()->pods.size() == 1 && Last()->pods[0].doc["status"]["podIP"] == "10.1.0.99"; }));
}

TEST_F(KubeSourceTest, ChangesWhileTheWatchesAreDroppedAreNotLost) {
  ASSERT_TRUE(source_->Start().ok());
  ASSERT_TRUE(Becomes("Pod shop/product-v1, Service shop/product"));
  ASSERT_TRUE(WaitFor([&] { return api_.open_watches() == 7; }));  // every kind's watch is open: each is cut
  api_.DropWatches();
  api_.Put(kRules + "product", Rule("product"));
  api_.Delete(kPods + "product-v1");
  ASSERT_TRUE(Becomes("DestinationRule shop/product, Service shop/product"));
  EXPECT_GE(api_.watch_requests(), 14) << "each watch resumed";
}

TEST_F(KubeSourceTest, AResourceWithAnInvalidFieldIsSkippedWithItsPath) {
  json bad = Rule("product");
  bad["spec"]["subsets"] = "v1";  // must be a list
  api_.Put(kRules + "product", bad);
  api_.Put(kVirtualServices + "reviews",
           {{"apiVersion", "networking.istio.io/v1"}, {"kind", "VirtualService"}, {"metadata", Meta("reviews")},
            {"spec", {{"hosts", {"reviews"}}, {"http", {{{"route", {{{"destination", {{"host", "reviews"}}}}}}}}}}}});
  ASSERT_TRUE(source_->Start().ok());
  ASSERT_TRUE(Becomes("Pod shop/product-v1, Service shop/product, VirtualService shop/reviews"));
  std::string problems;
  for (const auto& p : Last()->problems) problems += p + "\n";
  EXPECT_NE(problems.find("DestinationRule shop/product: spec.subsets"), std::string::npos) << problems;
}

TEST_F(KubeSourceTest, NoModelUntilEveryKindIsListed) {
  // The mesh kinds cannot be listed (their CRDs are not installed yet): no model at all, never
  // one without the routes; once they can, the first model has everything.
  api_.set_missing_prefix("/apis/");
  api_.Put(kRules + "product", Rule("product"));
  ASSERT_TRUE(source_->Start().ok());
  ASSERT_TRUE(WaitFor([&] { return api_.requests() >= 14; }));  // every kind listed, the mesh ones again and again
  EXPECT_EQ(Models(), 0u);
  EXPECT_FALSE(source_->synced());
  api_.set_missing_prefix("");
  ASSERT_TRUE(Becomes("DestinationRule shop/product, Pod shop/product-v1, Service shop/product"));
  EXPECT_EQ(Models(), 1u);
}

}  // namespace
}  // namespace tern::control_plane
