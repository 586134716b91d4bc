#include "control-plane/discovery/kube_source.h"

namespace tern::control_plane {

using nlohmann::json;

namespace {

constexpr auto kDebounce = std::chrono::milliseconds(50);

std::string KeyOf(const json& object) {
  const json& meta = object["metadata"];
  return meta.value("namespace", "") + "/" + meta.value("name", "");
}

// What discovery never reads, dropped as objects arrive: managedFields alone is often most of
// an object's bytes, and a cluster's worth of Pods is kept in memory.
json Trimmed(json object) {
  if (object.contains("metadata") && object["metadata"].is_object()) {
    object["metadata"].erase("managedFields");
    object["metadata"].erase("ownerReferences");
  }
  return object;
}

}  // namespace

std::vector<kube::ResourceKind> WatchedKinds() {
  return {
      {"/api/v1/namespaces", "Namespace", "v1"},
      {"/api/v1/services", "Service", "v1"},
      {"/api/v1/pods", "Pod", "v1"},
      // Istio's kinds at v1, or at v1beta1 where the cluster's CRDs (Istio before 1.22) serve no v1.
      {"/apis/networking.istio.io/v1/virtualservices", "VirtualService", "networking.istio.io/v1",
       "/apis/networking.istio.io/v1beta1/virtualservices", "networking.istio.io/v1beta1"},
      {"/apis/networking.istio.io/v1/destinationrules", "DestinationRule", "networking.istio.io/v1",
       "/apis/networking.istio.io/v1beta1/destinationrules", "networking.istio.io/v1beta1"},
      {"/apis/security.istio.io/v1/authorizationpolicies", "AuthorizationPolicy", "security.istio.io/v1",
       "/apis/security.istio.io/v1beta1/authorizationpolicies", "security.istio.io/v1beta1"},
      {"/apis/security.istio.io/v1/peerauthentications", "PeerAuthentication", "security.istio.io/v1",
       "/apis/security.istio.io/v1beta1/peerauthentications", "security.istio.io/v1beta1"},
  };
}

KubeSource::KubeSource(kube::Client& client, std::string server, const Logger& log, OnChange on_change,
                       kube::ReflectorOptions options)
    : client_(client), server_(std::move(server)), log_(log), on_change_(std::move(on_change)), options_(std::move(options)) {}

KubeSource::~KubeSource() { Stop(); }

Status KubeSource::Start() {
  publisher_ = std::thread([this] { Publish(); });
  kube::ReflectorSink& sink = *this;  // a private base: converted here, where it is accessible
  for (const auto& kind : WatchedKinds()) {
    reflectors_.push_back(std::make_unique<kube::Reflector>(client_, kind, options_, sink));
    if (Status st = reflectors_.back()->Start(); !st.ok()) return st;
  }
  return Status::Ok();
}

void KubeSource::Stop() {
  for (auto& r : reflectors_) r->Stop();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (publisher_.joinable()) publisher_.join();
}

std::shared_ptr<const Model> KubeSource::Current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return current_;
}

bool KubeSource::synced() const { return Current() != nullptr; }

void KubeSource::Replace(const kube::ResourceKind& kind, std::vector<json> objects) {
  std::map<std::string, json> copy;
  for (auto& o : objects) {
    std::string key = KeyOf(o);
    copy[std::move(key)] = Trimmed(std::move(o));
  }
  std::lock_guard<std::mutex> lock(mu_);
  copies_[kind.path] = std::move(copy);
  problems_.erase(kind.path);
  dirty_ = true;
  changed_.notify_all();
}

void KubeSource::Apply(const kube::ResourceKind& kind, kube::WatchEventType type, json object) {
  std::string key = KeyOf(object);
  std::lock_guard<std::mutex> lock(mu_);
  auto& copy = copies_[kind.path];
  if (type == kube::WatchEventType::kDeleted) copy.erase(key);
  else copy[key] = Trimmed(std::move(object));
  dirty_ = true;
  changed_.notify_all();
}

void KubeSource::Problem(const kube::ResourceKind& kind, const std::string& what) {
  log_.Warn("discovery: " + what, {{"kind", kind.kind}});
  std::lock_guard<std::mutex> lock(mu_);
  std::string& last = problems_[kind.path];
  if (last == what) return;  // the same failure again (a retry): no new model for it
  last = what;
  dirty_ = true;  // shown with the next model
  changed_.notify_all();
}

void KubeSource::Publish() {
  const size_t kinds = WatchedKinds().size();
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    changed_.wait(lock, [&] { return stopping_ || (dirty_ && copies_.size() == kinds); });
    if (stopping_) return;
    // A burst of events (a rollout, a relist) makes one model.
    changed_.wait_for(lock, kDebounce, [&] { return stopping_; });
    if (stopping_) return;
    dirty_ = false;
    std::vector<SourceDocument> documents;
    for (const auto& [path, copy] : copies_) {
      for (const auto& [key, object] : copy) documents.push_back({"api " + object.value("kind", "") + " " + key, object});
    }
    std::vector<std::string> problems;
    for (const auto& [path, what] : problems_) problems.push_back(what);
    const uint64_t generation = ++generation_;
    lock.unlock();
    // Built outside the lock: the reflectors go on meanwhile (their changes make the next one).
    auto built = BuildModel(documents, "default", generation);
    auto model = std::make_shared<Model>(*built);
    model->problems.insert(model->problems.begin(), problems.begin(), problems.end());
    std::shared_ptr<const Model> published = model;
    on_change_(published);
    lock.lock();
    current_ = std::move(published);
  }
}

}  // namespace tern::control_plane
