// HTTP/2 on a captured connection (prior knowledge: sniffed preface, or a port declared
// http2/grpc). Every stream is routed on its own like an HTTP/1.1 request and bridged to a stream
// on an HTTP/2 upstream connection; streams to the same endpoint share one upstream connection
// (multiplexed). Headers, bodies and trailers are passed on as they arrive, so gRPC works end to
// end, unary and streaming. Flow control is end to end: bytes are acknowledged to the sender only
// once the other side has taken them.
//
// Bounds: 100 concurrent streams; a header list over 64 KiB or 100 fields gets 431; a header
// block spread over more than 6 CONTINUATION frames or 256 KiB ends the connection (the
// CONTINUATION flood); a client that resets most of the streams it opens (rapid reset) gets
// GOAWAY(ENHANCE_YOUR_CALM). nghttp2's HTTP messaging rules refuse a malformed request before it
// is routed (RST_STREAM PROTOCOL_ERROR): pseudo-headers missing, repeated or after a regular
// field, a :method that is no token, a :path that is not origin-form or "*", characters a field
// cannot hold, connection-specific fields; so nothing malformed becomes an upstream request.
// Upstream failures give 503 (UF connect failure, UC reset before the response, UH no endpoint)
// or, once the response has started, a reset of the client's stream: never a truncated answer.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <string>

#include "proxy/asio_types.h"
#include "proxy/http_context.h"

namespace tern::proxy {

// `head`: bytes already read from the client (the sniffed preface).
Awaitable<void> ServeHttp2(Socket downstream, std::string head, HttpContext ctx);

}  // namespace tern::proxy
