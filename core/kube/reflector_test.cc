// The reflector against FakeApiServer's LIST and WATCH, with the failures a real API server
// shows: a watch cut mid-event, garbage on the stream, a version compacted away (410), bookmarks,
// an object over the size limit, a refused LIST. Every test asks one thing of the copy: it ends
// up equal to the server's objects, with nothing lost.
#include "core/kube/reflector.h"

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <mutex>

#include "core/kube/fake_apiserver.h"
#include "core/testing/wait_for.h"

namespace tern::kube {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// The copy a reflector keeps, by namespace/name, and what it reported.
class RecordingSink : public ReflectorSink {
 public:
  void Replace(const ResourceKind&, std::vector<json> objects) override {
    std::lock_guard<std::mutex> lock(mu_);
    objects_.clear();
    for (auto& o : objects) {
      std::string key = Key(o);  // first: json's assignment takes its right side by value (moved before the left is evaluated)
      objects_[key] = std::move(o);
    }
    ++replaces_;
  }
  void Apply(const ResourceKind&, WatchEventType type, json object) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::string key = Key(object);
    if (type == WatchEventType::kDeleted) objects_.erase(key);
    else objects_[key] = std::move(object);
  }
  void Problem(const ResourceKind&, const std::string& what) override {
    std::lock_guard<std::mutex> lock(mu_);
    problems_.push_back(what);
  }
  // "ns/name=label" for each object, in order: what the copy holds.
  std::string Names() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::string out;
    for (const auto& [key, o] : objects_) {
      out += (out.empty() ? "" : " ") + key + "=" + o["metadata"].value("labels", json::object()).value("v", "");
    }
    return out;
  }
  json Object(const std::string& key) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = objects_.find(key);
    return it == objects_.end() ? json() : it->second;
  }
  std::string Problems() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::string out;
    for (const auto& p : problems_) out += p + "\n";
    return out;
  }
  int replaces() const {
    std::lock_guard<std::mutex> lock(mu_);
    return replaces_;
  }

 private:
  static std::string Key(const json& o) {
    return o["metadata"].value("namespace", "") + "/" + o["metadata"].value("name", "");
  }
  mutable std::mutex mu_;
  std::map<std::string, json> objects_;
  std::vector<std::string> problems_;
  int replaces_ = 0;
};

using testing_support::WaitFor;

json Service(const std::string& name, const std::string& version, size_t padding = 0) {
  json s = {{"apiVersion", "v1"}, {"kind", "Service"},
            {"metadata", {{"name", name}, {"namespace", "shop"}, {"labels", {{"v", version}}}}},
            {"spec", {{"ports", {{{"port", 8080}}}}}}};
  if (padding) s["metadata"]["annotations"]["filler"] = std::string(padding, 'x');
  return s;
}
std::string PathOf(const std::string& name) { return "/api/v1/namespaces/shop/services/" + name; }

const ResourceKind kServices{"/api/v1/services", "Service", "v1"};

class ReflectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : {"a", "b", "c"}) api_.Put(PathOf(name), Service(name, "1"));
    api_.Put("/api/v1/namespaces/shop/configmaps/other", {{"metadata", {{"name", "other"}}}});  // not a service
    auto client = Client::Create(ClusterConfig{"127.0.0.1", api_.port(), api_.ca_pem(), "t", "", ""}, 2000ms);
    ASSERT_TRUE(client.ok()) << client.status().message();
    client_ = std::move(*client);
  }
  // A reflector on services, with short back-offs and pages of two (the list takes two pages).
  std::unique_ptr<Reflector> Start(ReflectorOptions options = {}) {
    options.backoff_initial = 50ms;
    options.backoff_max = 200ms;
    options.page_size = 2;
    auto r = std::make_unique<Reflector>(*client_, kServices, options, sink_);
    EXPECT_TRUE(r->Start().ok());
    return r;
  }
  // The reflector's watch number `n` is open (the knobs act on the watches open at the time).
  void WatchOpen(int n) {
    ASSERT_TRUE(WaitFor([&] { return api_.watch_requests() >= n && api_.open_watches() == 1; })) << sink_.Problems();
  }
  bool Holds(const std::string& names) {
    bool ok = WaitFor([&] { return sink_.Names() == names; });
    EXPECT_EQ(sink_.Names(), names) << sink_.Problems();
    return ok;
  }

  FakeApiServer api_{"t"};
  std::unique_ptr<Client> client_;
  RecordingSink sink_;
};

TEST_F(ReflectorTest, ListsInPagesThenWatchesEveryKindOfChange) {
  auto r = Start();
  ASSERT_TRUE(Holds("shop/a=1 shop/b=1 shop/c=1"));
  EXPECT_EQ(api_.list_requests(), 2) << "three services in pages of two";
  // A LIST's items come without kind and apiVersion: the copy has them.
  EXPECT_EQ(sink_.Object("shop/a").value("kind", ""), "Service");
  EXPECT_EQ(sink_.Object("shop/a").value("apiVersion", ""), "v1");
  api_.Put(PathOf("d"), Service("d", "1"));
  api_.Put(PathOf("a"), Service("a", "2"));
  api_.Delete(PathOf("b"));
  ASSERT_TRUE(Holds("shop/a=2 shop/c=1 shop/d=1"));
  EXPECT_EQ(r->resource_version(), api_.resource_version());
  EXPECT_EQ(r->lists(), 1u);
  EXPECT_EQ(sink_.Problems(), "");
}

TEST_F(ReflectorTest, AWatchCutMidEventIsResumedFromItsVersionWithNothingLost) {
  auto r = Start();
  ASSERT_TRUE(Holds("shop/a=1 shop/b=1 shop/c=1"));
  for (int round = 0; round < 3; ++round) {
    ASSERT_NO_FATAL_FAILURE(WatchOpen(round + 1));
    api_.DropWatches();
    // Changes while the watch is down (or being cut) reach the copy after the resume.
    api_.Put(PathOf("a"), Service("a", std::to_string(round + 2)));
    api_.Delete(PathOf(round == 0 ? "b" : "zzz"));
  }
  ASSERT_TRUE(Holds("shop/a=4 shop/c=1"));
  EXPECT_EQ(r->lists(), 1u) << "resumed from its version, never listed again";
  EXPECT_GE(api_.watch_requests(), 3);
  EXPECT_NE(sink_.Problems().find("the connection ended mid-stream"), std::string::npos) << sink_.Problems();
}

TEST_F(ReflectorTest, AVersionCompactedAwayStartsOverWithAListThatDropsWhatWasDeleted) {
  auto r = Start();
  ASSERT_TRUE(Holds("shop/a=1 shop/b=1 shop/c=1"));
  ASSERT_NO_FATAL_FAILURE(WatchOpen(1));
  // The watch's reconnect is held back until the history it would resume from is gone.
  api_.set_delay(300ms);
  api_.DropWatches();
  api_.Delete(PathOf("a"));
  api_.Put(PathOf("e"), Service("e", "1"));
  api_.Compact();
  api_.set_delay(0ms);
  ASSERT_TRUE(Holds("shop/b=1 shop/c=1 shop/e=1"));
  EXPECT_EQ(r->lists(), 2u);
  EXPECT_EQ(sink_.replaces(), 2);
  api_.Put(PathOf("f"), Service("f", "1"));  // and it watches on from the new list
  ASSERT_TRUE(Holds("shop/b=1 shop/c=1 shop/e=1 shop/f=1"));
}

TEST_F(ReflectorTest, BookmarksMoveTheVersionOnWithoutAnObject) {
  auto r = Start();
  ASSERT_TRUE(Holds("shop/a=1 shop/b=1 shop/c=1"));
  api_.Put("/api/v1/namespaces/shop/configmaps/other", {{"metadata", {{"name", "other"}}}});  // another collection's change
  const std::string now = api_.resource_version();
  EXPECT_NE(r->resource_version(), now);
  ASSERT_NO_FATAL_FAILURE(WatchOpen(1));
  api_.Bookmark();
  EXPECT_TRUE(WaitFor([&] { return r->resource_version() == now; })) << r->resource_version() << " vs " << now;
  EXPECT_EQ(sink_.Names(), "shop/a=1 shop/b=1 shop/c=1");
}

TEST_F(ReflectorTest, GarbageOnTheStreamIsReportedAndTheWatchResumed) {
  auto r = Start();
  ASSERT_TRUE(Holds("shop/a=1 shop/b=1 shop/c=1"));
  ASSERT_NO_FATAL_FAILURE(WatchOpen(1));
  api_.SendGarbageToWatches();
  api_.Put(PathOf("g"), Service("g", "1"));
  ASSERT_TRUE(Holds("shop/a=1 shop/b=1 shop/c=1 shop/g=1"));
  EXPECT_NE(sink_.Problems().find("not a watch event (type and object): this is not a watch event"), std::string::npos)
      << sink_.Problems();
  EXPECT_EQ(r->lists(), 1u);
}

TEST_F(ReflectorTest, AnObjectOverTheSizeLimitIsSkippedAndTheRestApplied) {
  ReflectorOptions options;
  options.limits.max_line = 4096;
  auto r = Start(options);
  ASSERT_TRUE(Holds("shop/a=1 shop/b=1 shop/c=1"));
  api_.Put(PathOf("huge"), Service("huge", "1", 20000));
  api_.Put(PathOf("h"), Service("h", "1"));
  ASSERT_TRUE(Holds("shop/a=1 shop/b=1 shop/c=1 shop/h=1"));
  EXPECT_NE(sink_.Problems().find("over 4096 bytes, skipped"), std::string::npos) << sink_.Problems();
}

TEST_F(ReflectorTest, ARefusedListIsReportedAndRetriedWithBackOff) {
  auto wrong = Client::Create(ClusterConfig{"127.0.0.1", api_.port(), api_.ca_pem(), "guess", "", ""}, 2000ms);
  ASSERT_TRUE(wrong.ok());
  ReflectorOptions options;
  options.backoff_initial = 50ms;
  options.backoff_max = 100ms;
  Reflector r(**wrong, kServices, options, sink_);
  ASSERT_TRUE(r.Start().ok());
  ASSERT_TRUE(WaitFor([&] { return api_.requests() >= 3; }));
  r.Stop();
  EXPECT_FALSE(r.synced());
  EXPECT_EQ(sink_.replaces(), 0);
  EXPECT_NE(sink_.Problems().find("LIST /api/v1/services: 401 Unauthorized"), std::string::npos) << sink_.Problems();
}

// A cluster whose Istio CRDs serve v1beta1 only (Istio before 1.22): the v1 LIST is 404, and the
// same objects are read at v1beta1, listed and watched there.
TEST_F(ReflectorTest, AKindNotServedAtItsVersionIsReadAtItsFallback) {
  const ResourceKind routes{"/apis/networking.istio.io/v1/virtualservices", "VirtualService", "networking.istio.io/v1",
                            "/apis/networking.istio.io/v1beta1/virtualservices", "networking.istio.io/v1beta1"};
  const std::string at = "/apis/networking.istio.io/v1beta1/namespaces/shop/virtualservices/";
  api_.set_missing_prefix("/apis/networking.istio.io/v1/");
  api_.Put(at + "a", {{"apiVersion", "networking.istio.io/v1beta1"}, {"kind", "VirtualService"},
                      {"metadata", {{"labels", {{"v", "1"}}}}}});
  ReflectorOptions options;
  options.backoff_initial = 50ms;
  Reflector r(*client_, routes, options, sink_);
  ASSERT_TRUE(r.Start().ok());
  ASSERT_TRUE(Holds("shop/a=1"));
  api_.Put(at + "b", {{"apiVersion", "networking.istio.io/v1beta1"}, {"kind", "VirtualService"},
                      {"metadata", {{"labels", {{"v", "1"}}}}}});
  ASSERT_TRUE(Holds("shop/a=1 shop/b=1"));
  EXPECT_EQ(r.lists(), 1u);
  EXPECT_NE(sink_.Problems().find("LIST /apis/networking.istio.io/v1/virtualservices: 404"), std::string::npos)
      << sink_.Problems();
  EXPECT_NE(sink_.Problems().find("reading /apis/networking.istio.io/v1beta1/virtualservices"), std::string::npos);
}

TEST_F(ReflectorTest, StopEndsAnIdleWatchAtOnce) {
  auto r = Start();
  ASSERT_TRUE(Holds("shop/a=1 shop/b=1 shop/c=1"));
  ASSERT_NO_FATAL_FAILURE(WatchOpen(1));
  auto start = std::chrono::steady_clock::now();
  r->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1000ms);
}

}  // namespace
}  // namespace tern::kube
