// The HTTP access log line, one per request, shared by both HTTP versions: Envoy's fields and
// response flags, so a reader used to Istio's logs finds what they expect.
#pragma once

#include <chrono>
#include <string>

#include "proxy/http_context.h"

namespace tern::proxy {

struct AccessEntry {
  const char* protocol = "HTTP/1.1";
  std::string method, path, authority, route, cluster, upstream;
  unsigned code = 0;
  std::string flags = "-";
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
};

// Logs at info; builds nothing when info is off.
void LogAccess(const HttpContext& ctx, const AccessEntry& e);

}  // namespace tern::proxy
