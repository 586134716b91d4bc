// Discovery from the Kubernetes API: one reflector (core/kube/reflector.h) per kind the mesh
// reads (Services, Pods, Namespaces, VirtualServices, DestinationRules, AuthorizationPolicies,
// PeerAuthentications), their copies merged into one Model on every change, debounced 50 ms.
// The first model waits until every kind has been listed once (a proxy must never get a
// snapshot that lacks the routes it is about to get). A failing kind is reported (log line, and
// /debug/resources) and retried; the others go on, and the model keeps its last good copy of it.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "control-plane/discovery/source.h"
#include "core/kube/reflector.h"
#include "core/log/logger.h"

namespace tern::control_plane {

// The kinds discovery watches, in the API's versions the mesh reads (Istio's v1 CRD versions).
std::vector<kube::ResourceKind> WatchedKinds();

class KubeSource final : public DiscoverySource, private kube::ReflectorSink {
 public:
  KubeSource(kube::Client& client, std::string server, const Logger& log, OnChange on_change,
             kube::ReflectorOptions options = {});
  ~KubeSource() override;
  KubeSource(const KubeSource&) = delete;
  KubeSource& operator=(const KubeSource&) = delete;

  Status Start() override;
  void Stop() override;
  std::shared_ptr<const Model> Current() const override;
  std::string Describe() const override { return "kubernetes " + server_; }
  // Every kind was listed once (the first model was built).
  bool synced() const;

 private:
  // --- kube::ReflectorSink, from the reflectors' threads ---
  void Replace(const kube::ResourceKind& kind, std::vector<nlohmann::json> objects) override;
  void Apply(const kube::ResourceKind& kind, kube::WatchEventType type, nlohmann::json object) override;
  void Problem(const kube::ResourceKind& kind, const std::string& what) override;

  void Publish();  // the publisher thread: a model per burst of changes

  kube::Client& client_;
  const std::string server_;
  const Logger& log_;
  OnChange on_change_;
  const kube::ReflectorOptions options_;
  std::vector<std::unique_ptr<kube::Reflector>> reflectors_;
  std::thread publisher_;

  mutable std::mutex mu_;
  std::condition_variable changed_;
  bool dirty_ = false, stopping_ = false;
  // By kind's path, then "namespace/name": each kind's copy, as the API has it.
  std::map<std::string, std::map<std::string, nlohmann::json>> copies_;
  std::map<std::string, std::string> problems_;  // by kind's path: the last failure (cleared by a LIST)
  uint64_t generation_ = 0;
  std::shared_ptr<const Model> current_;
};

}  // namespace tern::control_plane
