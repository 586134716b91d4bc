// The config stream to each proxy: `GET /v1/snapshots?namespace=NS&pod=NAME` opens a long-lived
// response (newline-delimited JSON, one snapshot a line). The proxy gets its full snapshot at
// once, then a new one whenever the model changes what it would run from (a change that does
// not touch a proxy's snapshot sends it nothing), with a version that only grows. A proxy that
// falls behind is cut and starts over when it reconnects (the server bounds what it queues).
//
// What a proxy is: the pod and namespace it names, held to the pod's IP: discovery must know
// that pod, and the stream must come from its IP (a proxy claiming another pod's name is
// refused, 403, with the reason). With the Kubernetes source it must also prove it with the
// pod's projected service-account token (Authorization: Bearer), which the API server reviews
// (TokenReview): no token is 401, a token the server refuses 401, a token of another pod (or, not
// bound to a pod, of another service account) 403. The mTLS identity comes with the CA.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "control-plane/discovery/model.h"
#include "control-plane/push/snapshot_builder.h"
#include "control-plane/server/https_server.h"
#include "core/kube/token_review.h"
#include "core/log/logger.h"
#include "core/meshconfig/mesh_config.h"
#include "core/metrics/registry.h"

namespace tern::control_plane {

class ConfigPush {
 public:
  ConfigPush(const Logger& log, Registry& metrics, std::function<std::shared_ptr<const MeshConfig>()> mesh);

  // Streams and acks must carry the pod's token, reviewed by `reviewer` (null: no token asked,
  // as with the folder source). Set before the first stream.
  void RequireTokens(kube::TokenReviewer* reviewer) { reviewer_ = reviewer; }
  // The stream route (HttpsServer::RouteStream). It may wait on a TokenReview.
  HttpResponse Open(const HttpRequest& request, const std::shared_ptr<ResponseStream>& stream);
  // A new model: every connected proxy whose snapshot it changes gets the new one.
  void ModelChanged(std::shared_ptr<const Model> model);
  // POST /v1/ack {"namespace", "pod", "version", "error"}: what a proxy did with a snapshot
  // (error empty: applied; else why it refused it and kept the one it had).
  HttpResponse Ack(const HttpRequest& request);
  // GET /debug/proxies: every connected proxy, the version it was sent and the one it
  // acknowledged (with its error), since when.
  nlohmann::json Proxies() const;
  // GET /debug/proxy-config?namespace=&pod=: the snapshot last sent to that proxy.
  HttpResponse ProxyConfig(const HttpRequest& request) const;

 private:
  struct Subscriber {
    ProxyIdentity identity;
    std::shared_ptr<ResponseStream> stream;
    std::string peer;
    std::string last_sent;  // the snapshot without its version, as sent last
    uint64_t version = 0;
    std::string acked_version, ack_error;  // under mu_
    int64_t connected_at_ms = 0;
  };
  // "" when a stream from `peer` ("ip:port") may speak for `who` (and, when `service_account`
  // is given, the pod runs as it); else why not.
  static std::string CheckIdentity(const Model& model, const ProxyIdentity& who, const std::string& peer,
                                   const std::string& service_account = "");
  // With a reviewer: {0, ""} when the request's token is `who`'s pod's (its service account in
  // `service_account` when the token is not bound to a pod, to be checked against the model);
  // else the status to answer and why.
  std::pair<int, std::string> CheckToken(const HttpRequest& request, const ProxyIdentity& who, std::string* service_account);
  // Sends `s` its snapshot from `model` if it differs from what it has; false once its stream ended.
  bool Push(Subscriber& s, const Model& model, const SharedSnapshot& shared);
  // The snapshots' common part for `model` and `mesh`, built once (under push_mu_).
  const SharedSnapshot& SharedFor(const std::shared_ptr<const Model>& model, const std::shared_ptr<const MeshConfig>& mesh);

  const Logger& log_;
  std::function<std::shared_ptr<const MeshConfig>()> mesh_;
  kube::TokenReviewer* reviewer_ = nullptr;
  // SharedFor's cache, under push_mu_.
  SharedSnapshot shared_;
  std::shared_ptr<const Model> shared_model_;
  std::shared_ptr<const MeshConfig> shared_mesh_;
  Counter& pushes_;
  Counter& connects_;
  std::mutex push_mu_;  // one push at a time (a model change, or a stream's first snapshot)
  mutable std::mutex mu_;  // the model and the subscriber list, for readers
  std::shared_ptr<const Model> model_;
  std::vector<std::shared_ptr<Subscriber>> subscribers_;
  std::atomic<uint64_t> next_version_{1};
};

}  // namespace tern::control_plane
