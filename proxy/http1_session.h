// HTTP/1.1 on a captured outbound connection to a known service: every request is routed on
// its own (VirtualService match, weighted subset, endpoint), header operations and rewrites
// applied, and bodies streamed both ways with back-pressure (never buffered whole). Upstream
// connections are kept alive and reused for the next request of the same downstream connection.
// Local answers carry Envoy's response flags in the access log: NR (no route), UH (no healthy
// upstream), NC (subset no DestinationRule defines), UF (connect failure), UC/UPE (upstream
// closed or answered garbage), DPE (the client sent garbage: 400).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <memory>
#include <string>

#include "core/log/logger.h"
#include "proxy/route_table.h"

namespace tern::proxy {

struct Http1Context {
  std::shared_ptr<const RouteTable> table;  // the snapshot this connection started on
  const VirtualHost* host = nullptr;        // the service the original destination names
  boost::asio::ip::tcp::endpoint original;
  Logger* log = nullptr;
  std::chrono::milliseconds header_timeout{15000};  // a client must send a whole header within it
  std::chrono::milliseconds connect_timeout{10000};
};

// "10.0.0.1:80" / "[fd00::1]:80", as the access logs write addresses.
std::string EndpointString(const boost::asio::ip::tcp::endpoint& e);

// `head`: bytes already read from the client (by the sniffer).
boost::asio::awaitable<void> ServeHttp1(boost::asio::ip::tcp::socket downstream, std::string head, Http1Context ctx);

}  // namespace tern::proxy
