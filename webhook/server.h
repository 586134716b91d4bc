// The injection webhook's HTTPS server (cpp-httplib + OpenSSL, TLS 1.2+).
//   POST /inject   AdmissionReview in, AdmissionReview out (see admission.h)
//   GET  /healthz  the process is up
//   GET  /readyz   a certificate is loaded and the mesh config is valid
//   GET  /metrics  Prometheus text
// The serving certificate, key and the mesh config are files (a mounted Secret and ConfigMap);
// a watcher re-reads them when they change, so rotation needs no restart, and a bad new file
// is logged and ignored while the last good one stays in force.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "core/base/status.h"
#include "core/log/logger.h"

namespace tern::webhook {

struct ServerOptions {
  std::string host = "0.0.0.0";
  int port = 15017;  // 0 picks a free port (tests)
  std::string cert_file, key_file;
  std::string mesh_config_file;  // empty: built-in defaults
  size_t max_body_bytes = 4 << 20;
  int threads = 64;  // keep-alive connections each hold a worker while open
  std::chrono::milliseconds reload_interval{1000};
};

class WebhookServer {
 public:
  // Loads the certificate and the mesh config (both must be valid at start) and binds the port.
  static Result<std::unique_ptr<WebhookServer>> Create(const ServerOptions& options, const Logger& logger);
  ~WebhookServer();

  int port() const;
  // Serves until Stop(); call from one thread.
  void Run();
  void Stop();

 private:
  struct Impl;
  explicit WebhookServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tern::webhook
