// The HTTP access log line, one per request, shared by both HTTP versions: Envoy's fields and
// response flags, so a reader used to Istio's logs finds what they expect.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "proxy/http_context.h"
#include "proxy/response_flags.h"

namespace tern::proxy {

struct AccessEntry {
  const char* protocol = "HTTP/1.1";
  std::string method, path, authority;
  // The snapshot's names (it outlives the connection's requests), or the session's own.
  std::string_view route, cluster;
  std::optional<boost::asio::ip::tcp::endpoint> upstream;  // formatted only when the entry is logged
  unsigned code = 0;
  ResponseFlags flags;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
};

// Logs at info; builds nothing when info is off.
void LogAccess(const HttpContext& ctx, const AccessEntry& e);

}  // namespace tern::proxy
