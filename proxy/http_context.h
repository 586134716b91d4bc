// What an HTTP session (HTTP/1.1 or HTTP/2) on a captured connection knows of where it is.
#pragma once

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <memory>

#include "core/log/logger.h"
#include "proxy/asio_types.h"
#include "proxy/route_table.h"
#include "proxy/token_bucket.h"

namespace tern::proxy {

class Http1Pool;
class H2UpstreamPool;
class ConfigStore;

struct HttpContext {
  // The snapshot the connection's next request routes by (FollowCurrentSnapshot), and the
  // store's generation it was taken at.
  std::shared_ptr<const RouteTable> table;
  const ConfigStore* config = nullptr;
  uint64_t table_generation = 0;
  const VirtualHost* host = nullptr;        // the service the original destination names (may be null)
  boost::asio::ip::tcp::endpoint original;
  boost::asio::ip::tcp::endpoint peer;      // the downstream client
  Logger* log = nullptr;
  // Inbound: the request came from outside the pod and goes to the app at the original
  // destination (no routing); steering headers are stripped.
  bool inbound = false;
  // Inbound: the protocol the snapshot declares for the app's port (looked up once per connection).
  config::Protocol app_protocol = config::Protocol::kSniff;
  TokenBucket* inbound_limit = nullptr;        // tern.dev/rate-limit: inbound requests past it get 429
  const std::atomic<bool>* draining = nullptr;  // set on shutdown: connections are not kept alive
  std::chrono::milliseconds header_timeout{15000};  // a client must send a whole header within it
  std::chrono::milliseconds connect_timeout{10000};
  Http1Pool* http1_pool = nullptr;     // the worker's HTTP/1.1 upstream connections
  H2UpstreamPool* h2_pool = nullptr;   // and its HTTP/2 ones
};

// Called as each request starts: when a newer snapshot was accepted since the connection's
// last request, the connection takes it (and what it says of the original destination), so a
// long-lived connection follows a canary shift or a removed endpoint at its next request, as
// Envoy takes the route configuration per stream. Costs one atomic load when nothing changed.
// What a request in flight points into stays alive: it holds its table (HTTP/2 streams), or
// the connection does until its next request (HTTP/1.1, one request at a time).
void FollowCurrentSnapshot(HttpContext& ctx);

// "10.0.0.1:80" / "[fd00::1]:80", as the access logs write addresses.
std::string EndpointString(const boost::asio::ip::tcp::endpoint& e);
// An endpoint of the snapshot as a socket address.
boost::asio::ip::tcp::endpoint ToEndpoint(const UpstreamEndpoint& e);

}  // namespace tern::proxy
