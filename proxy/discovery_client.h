// The proxy's end of ternd's config stream (control-plane/push/config_push.h): a connection to
// TERN_DISCOVERY_ADDRESS over HTTPS, ternd's certificate verified against the mesh root the pod
// mounts (and its name against the address's host), `GET /v1/snapshots?namespace=&pod=`, then
// every line of the chunked answer handed to `apply` as one snapshot, and what became of it
// acknowledged (the version applied, or refused with why). On any failure (ternd down,
// refused, the stream cut) it reconnects after a jittered back-off (0.2 s doubling to 15 s, back
// to the start once a stream delivered); meanwhile the proxy keeps routing by its last snapshot.
// It runs on a thread and io_context of its own.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "core/base/status.h"
#include "core/log/logger.h"

namespace tern::proxy {

struct DiscoveryClientOptions {
  std::string address;       // host:port
  std::string ca_file;       // PEM roots ternd's certificate must chain to
  std::string pod, namespace_;
  // The pod's projected service-account token (the injected istio-token), sent as a bearer
  // token with every request and read again for each (the kubelet rotates it); none when the
  // file is absent (a pod outside Kubernetes).
  std::string token_file;
  size_t max_snapshot_bytes = 64 << 20;
  // Called on the client's thread with each snapshot's text; sets the version it applied. Its
  // status is logged and acknowledged to ternd (POST /v1/ack), with the version.
  std::function<Status(const std::string& text, std::string* version)> apply;
};

class DiscoveryClient {
 public:
  DiscoveryClient(DiscoveryClientOptions options, const Logger& log);
  ~DiscoveryClient();
  DiscoveryClient(const DiscoveryClient&) = delete;
  DiscoveryClient& operator=(const DiscoveryClient&) = delete;

  void Start();
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tern::proxy
