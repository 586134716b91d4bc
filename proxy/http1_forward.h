// An HTTP/1.1 client's request on its way upstream, once its session has read its head, routed
// it and rewritten it: to an HTTP/1.1 upstream (http1_to_http1.cc) or as a stream on an HTTP/2
// one (http1_to_http2.cc). Both take their attempts from one AttemptLoop (deadlines, retries,
// endpoints, outlier detection) and give back one ForwardOutcome.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <span>
#include <string>

#include "proxy/access_log.h"
#include "proxy/asio_types.h"
#include "proxy/attempt_loop.h"
#include "proxy/http1_codec.h"
#include "proxy/http1_relay.h"
#include "proxy/http_context.h"
#include "proxy/route_decision.h"
#include "proxy/rng.h"

namespace tern::proxy {

class H2UpstreamPool;

inline constexpr size_t kH2Chunk = 16384;  // what one step moves between an HTTP/1.1 client and its stream

// One request to forward upstream, its header already read and rewritten.
struct ForwardRequest {
  Socket& down;
  boost::beast::flat_buffer& dbuf;
  Http1Head& req;
  BodyDecoder& body;    // the request's, from `dbuf` then `down`
  Http1Head& answer;    // the connection's, reused for each answer
  std::string& wire;    // the connection's, for each head as it is written
  RelayScratch& scratch;
  std::span<char> chunk;  // the HTTP/2 forwarding's body buffer (empty for HTTP/1.1 upstreams)
  HttpContext& ctx;
  const RouteDecision& d;
  AttemptLoop& attempts;
  Rng& rng;
  AccessEntry& entry;
  bool keep_alive;
  Executor ex;
  const std::string& upgrade;  // the protocol the request asks to switch to ("" for none)
};

// How a forwarded request ended: its answer relayed to the client, or a local answer for the
// session to give.
struct ForwardOutcome {
  unsigned local_status = 0;  // non-zero: the session answers this itself
  std::string local_body;
  ResponseFlags flags;
  bool body_error = false;  // the client's body was malformed: 400, the connection ends
  bool close = false;       // the client connection must end (a broken answer, an unread body)
};

// The local answer for an upstream failure that stands (its flag is set already).
inline ForwardOutcome& Failed(ForwardOutcome& out, ResponseFlag flag) {
  FailureAnswer a = AnswerFor(flag);
  out.local_status = a.status;
  out.local_body = a.body;
  return out;
}

// Istio header operations on an HTTP/1.1 head.
void ApplyHeaderOps(Http1Head& h, const istio::HeaderOperations& ops);

// The route's (and the picked subset's) response header operations on an answer.
inline void ApplyResponseOps(Http1Head& res, const RouteDecision& d) {
  if (d.route && d.route->spec) ApplyHeaderOps(res, d.route->spec->headers.response);
  if (d.picked && d.picked->headers) ApplyHeaderOps(res, d.picked->headers->response);
}

// Before a retry: the backoff, then the loop's next endpoint.
Awaitable<void> NextTry(ForwardRequest& x);

// To an HTTP/1.1 upstream, with the route's retries, the answer relayed as it streams; a 101 to
// a WebSocket upgrade becomes a tunnel.
Awaitable<ForwardOutcome> ForwardToHttp1(ForwardRequest& x);
// As a stream on a pooled HTTP/2 connection, the answer written back as HTTP/1.1.
Awaitable<ForwardOutcome> ForwardToHttp2(ForwardRequest& x, H2UpstreamPool& pool);

}  // namespace tern::proxy
