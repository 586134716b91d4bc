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

struct HttpContext {
  std::shared_ptr<const RouteTable> table;  // the snapshot this connection started on
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

// "10.0.0.1:80" / "[fd00::1]:80", as the access logs write addresses.
std::string EndpointString(const boost::asio::ip::tcp::endpoint& e);
// An endpoint of the snapshot as a socket address.
boost::asio::ip::tcp::endpoint ToEndpoint(const UpstreamEndpoint& e);

}  // namespace tern::proxy
