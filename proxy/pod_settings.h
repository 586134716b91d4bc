// Per-pod tuning, read from the pod's annotations as the downward API mounts them
// (/etc/istio/pod/annotations: one `key="value"` line per annotation, the value quoted as Go's
// %q does):
//   proxy.istio.io/config      concurrency, terminationDrainDuration (else drainDuration), logLevel
//   sidecar.istio.io/logLevel  the log level (wins over the ProxyConfig's)
//   tern.dev/rate-limit        inbound local rate limit, "<n>/s" | "<n>/m" | "<n>/h" (429 beyond)
//   tern.dev/rate-limit-burst  the bucket's size (default: one second's worth, at least 1)
// Bad values are reported and ignored, never fatal: the proxy starts with its defaults.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/log/logger.h"

namespace tern::proxy {

// The downward API's annotations file; lines that do not parse are reported in `problems`.
std::map<std::string, std::string> ParseDownwardApiFile(const std::string& text, std::vector<std::string>* problems);

struct RateLimit {
  double per_second = 0;
  double burst = 0;
};

struct PodSettings {
  std::optional<int> concurrency;
  std::optional<LogLevel> log_level;
  std::optional<std::chrono::milliseconds> drain;
  std::optional<RateLimit> rate_limit;
  std::vector<std::string> problems;  // "<annotation>: <why>", each ignored
};

PodSettings SettingsFromAnnotations(const std::map<std::string, std::string>& annotations);

}  // namespace tern::proxy
