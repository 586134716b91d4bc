// The sidecar's status port (15020, `--status-port`), where the injector points every rewritten
// probe of the pod:
//   GET /healthz/ready                    the proxy's readiness (as on 15021)
//   GET /app-health/<container>/livez|readyz|startupz
//   GET /app-lifecycle/<container>/poststartz|prestopz
//                                         the app's original check, run now (app_prober.h)
// It runs on a thread and io_context of its own: a probe that waits for a slow app holds no
// worker, and the workers' traffic never delays a probe.
#pragma once

#include <boost/asio/ip/address.hpp>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "core/base/status.h"
#include "core/log/logger.h"
#include "proxy/app_prober.h"

namespace tern::proxy {

struct StatusAgentOptions {
  std::string address = "0.0.0.0";
  uint16_t port = 15020;  // 0 picks a free port (tests)
  std::map<std::string, AppProbe> probers;
  boost::asio::ip::address app;  // the pod's IP: where probes go
  std::function<bool()> ready;
};

class StatusAgent {
 public:
  StatusAgent(StatusAgentOptions options, const Logger& log);
  ~StatusAgent();
  StatusAgent(const StatusAgent&) = delete;
  StatusAgent& operator=(const StatusAgent&) = delete;

  // Binds and starts serving on its thread.
  Status Start();
  void Stop();
  uint16_t port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tern::proxy
