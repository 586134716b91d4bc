// HTTP/1.1 on a captured connection. Outbound (to a known service, or under REGISTRY_ONLY to any
// destination): every request is routed on its own (VirtualService match, weighted subset,
// endpoint), header operations and rewrites applied, mirrored when the route says so. Inbound:
// every request goes to the app at the original destination, steering headers stripped. Bodies
// stream both ways with back-pressure (never buffered whole); upstream connections are kept
// alive and reused for the next request of the same downstream connection. Local answers carry
// Envoy's response flags in the access log: NR (no route), UH (no healthy upstream), NC (subset
// no DestinationRule defines), UF (connect failure), UC/UPE (upstream closed or answered
// garbage), DPE (the client sent garbage: 400).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <string>

#include "proxy/asio_types.h"
#include "proxy/http_context.h"

namespace tern::proxy {

// How many times an idle connection has parked (given back its buffers) in this process: the
// main thread returns freed memory to the kernel after a wave of them.
uint64_t ParkedConnectionsTotal();

// How a session ended: the connection is over (the caller closes it), or parked: a keep-alive
// client idles between requests with nothing of its next one read, and the session holds
// nothing more. The caller then keeps the socket (Http1Parking) until the client sends again,
// when a new session starts on it, or until `idle_deadline`, when it is closed.
struct Http1SessionEnd {
  bool parked = false;
  std::chrono::steady_clock::time_point idle_deadline;
};

// `head`: bytes already read from the client (by the sniffer).
Awaitable<Http1SessionEnd> ServeHttp1(Socket& downstream, std::string head, HttpContext& ctx);

}  // namespace tern::proxy
