// tern-proxy's listeners and connection handling. One io_context per worker thread, shared
// nothing: every worker accepts on its own SO_REUSEPORT socket for the captured listeners, and
// a connection lives and dies on the worker that accepted it.
//   outbound 15001  captured outbound traffic; the original destination (SO_ORIGINAL_DST) names
//                   the service; its protocol is declared or sniffed (bounded wait): HTTP/1.1 and
//                   HTTP/2 are served request by request (http1_session.h, http2_session.h),
//                   anything else is relayed as TCP to one of the service's endpoints, or to the
//                   original destination itself when it is no service (ALLOW_ANY; REGISTRY_ONLY
//                   refuses it: 502 for HTTP, a close otherwise);
//   inbound 15006   captured inbound traffic, to the app from 127.0.0.6 (::6), the source the
//                   capture rules exempt, so the proxy's own connection is not captured again;
//                   HTTP request by request (steering headers stripped, the rate limit), else TCP;
//   admin 15000     (127.0.0.1) /ready (LIVE, DRAINING), /config_dump, /quitquitquit, /logging?level=;
//   health 15021    /healthz/ready (200 once serving with a snapshot accepted, 503 before and
//                   while draining);   stats 15090  /stats/prometheus.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "core/base/status.h"
#include "core/log/logger.h"
#include "proxy/config_store.h"
#include "proxy/pod_settings.h"

namespace tern::proxy {

struct ServerOptions {
  // 0 binds an ephemeral port (tests); bound ports are reported by Server::port().
  uint16_t outbound_port = 15001, inbound_port = 15006, admin_port = 15000, health_port = 15021, stats_port = 15090;
  int workers = 2;
  bool tproxy = false;  // inbound arrives by TPROXY: the accepted socket's own address is the destination
  std::chrono::milliseconds sniff_timeout{100};
  std::chrono::milliseconds connect_timeout{10000};
  std::chrono::milliseconds header_timeout{15000};  // an HTTP/1.1 request's whole header must arrive within it
  std::optional<RateLimit> inbound_rate_limit;  // tern.dev/rate-limit
};

enum class ListenerKind { kOutbound, kInbound, kAdmin, kHealth, kStats };

class Server {
 public:
  Server(ServerOptions options, ConfigStore& config, Logger& log);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds every listener (an error names the port) and starts the workers.
  Status Start();
  // Graceful shutdown, first step: stops accepting, reports not ready, and asks open connections
  // to end (HTTP/1.1 answers say "Connection: close", HTTP/2 clients get GOAWAY). Safe from any thread.
  void Drain();
  // Captured connections still open.
  int active_connections() const;
  // Stops accepting and ends the workers; open connections are closed. Safe from any thread.
  void Stop();
  // Blocks until Stop() (or /quitquitquit) has ended every worker.
  void Wait();
  uint16_t port(ListenerKind kind) const;
  // True once Stop() or /quitquitquit asked the workers to end.
  bool stopping() const;
  // What /healthz/ready says: serving (not draining) and a snapshot accepted.
  bool ready() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tern::proxy
