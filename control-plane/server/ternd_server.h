// ternd's HTTPS endpoints on its one listener (https_server.h):
//   POST /inject   AdmissionReview in, AdmissionReview out (webhook/admission.h)
//   GET  /healthz  the process is up
//   GET  /readyz   a certificate is loaded and the mesh config is valid
//   GET  /metrics  Prometheus text: the webhook's, the listener's and the push's counters
//   GET  /v1/snapshots?namespace=NS&pod=NAME   the config stream (push/config_push.h)
//   POST /v1/ack            a proxy says what it did with a snapshot (applied, or refused and why)
//   GET  /debug/proxies     the connected proxies, the version each was sent and acknowledged
//   GET  /debug/proxy-config?namespace=NS&pod=NAME   the snapshot last sent to that proxy
//   GET  /debug/resources   what discovery read, and each object it skipped with the reason
// The serving certificate, key and the mesh config are files (a mounted Secret and ConfigMap);
// a watcher re-reads them when they change, so rotation needs no restart, and a bad new file
// is logged and ignored while the last good one stays in force.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "control-plane/server/https_server.h"
#include "core/base/status.h"
#include "core/log/logger.h"

namespace tern::control_plane {

struct TerndOptions {
  HttpsServerOptions https;  // port 15017 unless set
  std::string cert_file, key_file;
  std::string mesh_config_file;  // empty: built-in defaults
  std::string config_folder;     // discovery from a folder of manifests; empty: none yet
  // Discovery from the Kubernetes API: "in-cluster" (the pod's service account) or a
  // kubeconfig file's path; empty: none. Not with config_folder.
  std::string kubeconfig;
  std::chrono::milliseconds reload_interval{1000};
};

class TerndServer {
 public:
  // Loads the certificate and the mesh config (both must be valid at start) and binds the port.
  static Result<std::unique_ptr<TerndServer>> Create(const TerndOptions& options, const Logger& logger);
  ~TerndServer();

  int port() const;
  // Serves until Stop(); call from one thread.
  void Run();
  // From any thread.
  void Stop();

 private:
  struct Impl;
  explicit TerndServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tern::control_plane
