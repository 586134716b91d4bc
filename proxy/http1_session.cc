#include "proxy/http1_session.h"

#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/beast/http/error.hpp>
#include <atomic>
#include <random>
#include <span>

#include "core/base/ascii.h"
#include "proxy/access_log.h"
#include "proxy/attempt_loop.h"
#include "proxy/header_limits.h"
#include "proxy/http1_codec.h"
#include "proxy/http1_forward.h"
#include "proxy/http1_relay.h"
#include "proxy/mesh_headers.h"
#include "proxy/request_accounting.h"
#include "proxy/route_decision.h"

namespace tern::proxy {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;
using error_code = boost::system::error_code;

namespace {

// The proxy's own answer; with `grpc_status`, gRPC's trailers-only form (HTTP 200, the status in
// the header).
Awaitable<error_code> LocalReply(Socket& s, unsigned version, unsigned status, std::string_view body, bool keep_alive,
                                 std::string_view location = "", std::optional<int> grpc_status = std::nullopt) {
  Http1Head res;
  res.StartResponse(status);
  res.Add("Server", "tern");
  res.Add("Content-Type", grpc_status ? "application/grpc" : "text/plain");
  if (grpc_status) {
    res.Add("grpc-status", std::to_string(*grpc_status));
    res.Add("grpc-message", "fault filter abort");
  }
  if (!location.empty()) res.Add("Location", location);
  res.Frame(BodyFraming::kLength, body.size());
  std::string out;
  res.AppendTo(out, keep_alive, version);
  out.append(body);
  co_return co_await WriteAll(s, out);
}

// Removes what a request must not carry past the proxy: from outside (inbound) every steering
// header, from the app (outbound) a claimed client certificate.
void StripMeshHeaders(Http1Head& h, bool inbound) {
  if (inbound) h.EraseIf([](std::string_view name) { return IsSteeringHeader(name); });
  else h.EraseIf([](std::string_view name) { return IsClientCertHeader(name); });
}

// The protocol a request asks to switch to, when the mesh passes that upgrade: websocket, as
// Istio does by default. "" otherwise: any other upgrade (h2c, ...) is dropped with the
// request's hop-by-hop fields and the request served as it is.
std::string UpgradeOf(const Http1Head& req) {
  bool asked = false;
  for (const auto& f : req.fields) {
    if (!AsciiIEquals(f.name, "connection")) continue;
    std::string_view v = f.value;
    while (!v.empty()) {
      size_t comma = v.find(',');
      std::string_view token = v.substr(0, comma);
      while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) token.remove_prefix(1);
      while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
      asked = asked || AsciiIEquals(token, "upgrade");
      v = comma == std::string_view::npos ? std::string_view() : v.substr(comma + 1);
    }
  }
  std::string_view protocol = req.Get("upgrade");
  if (!asked || !AsciiIEquals(protocol, "websocket")) return "";
  return std::string(protocol);
}

// The header timeout without a timer update per request: the request loop moves a deadline
// forward (a plain store), and one watchdog per connection sleeps until it and ends the
// connection if a header is still awaited then.
//
// The same watchdog parks a connection that has idled kParkAfter between requests: it cancels
// the pending read, and the session ends, giving the socket back to its owner (Http1Parking),
// which waits for it to become readable with no buffer and no coroutine frame at all (as
// HAProxy does; see bench/idle_connections.sh). A busy connection never parks and pays nothing
// for it: no timer is armed per request.
constexpr auto kParkAfter = std::chrono::seconds(1);
// The room a connection waits for its client's next request with: most request heads (and
// their small bodies) fit; a larger one is read on at once (ReadNow) into a buffer grown to
// kReadSize. A waiting connection so holds 1 KiB, not 16, until it parks.
constexpr size_t kRequestWaitRead = 1024;
std::atomic<uint64_t> parked_total{0};

struct HeaderClock {
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  bool awaiting_header = false;
  // The connection's read buffer (ServeRequests'); the watchdog looks at it only while both run.
  const boost::beast::flat_buffer* buffered = nullptr;
  // The header timeout cut a request whose first bytes had come: it is answered 408. An idle
  // keep-alive connection is closed without a word (a 408 could cross its next request).
  bool cut_mid_header = false;
  // Set by the watchdog as it cancels an idle connection's read; the session then parks.
  bool park = false;
  bool parked = false;  // during this header wait (the session clears it for the next)
  bool parked_out = false;  // the session ended parked: the socket goes back to its owner
};

Awaitable<void> HeaderWatchdog(HeaderClock& clock, Socket& down, std::chrono::milliseconds header_timeout) {
  Timer timer(co_await asio::this_coro::executor);
  // The header wait under way began one header timeout before its deadline.
  auto park_at = [&] { return clock.deadline - header_timeout + kParkAfter; };
  for (;;) {
    // Awaiting a header: its deadline, or the moment to park if that comes first. A request
    // under way: look again a park period on (the session moves the deadline without waking
    // this, so a connection that goes idle is parked at most that late).
    auto wake = std::chrono::steady_clock::now() + kParkAfter;
    if (clock.awaiting_header) wake = clock.parked ? clock.deadline : std::min(clock.deadline, park_at());
    timer.expires_at(wake);
    auto [ec] = co_await timer.async_wait(kNoThrow);
    if (ec) co_return;  // cancelled: the connection ended first
    const auto now = std::chrono::steady_clock::now();
    if (clock.awaiting_header && now >= clock.deadline) {  // slow header: cut
      clock.cut_mid_header = clock.buffered && clock.buffered->size() > 0;
      co_return;
    }
    // Idle, with nothing of a next request read: the read is cancelled, the session parks.
    if (clock.awaiting_header && !clock.parked && now >= park_at() && clock.buffered && clock.buffered->size() == 0) {
      clock.park = clock.parked = true;
      boost::system::error_code ignored;
      down.cancel(ignored);
    }
  }
}

}  // namespace

// The requests of one connection, in order.
Awaitable<void> ServeRequests(Socket& down, std::string head, HttpContext& ctx,
                                    HeaderClock& clock) {
  auto ex = down.get_executor();
  boost::beast::flat_buffer dbuf;
  dbuf.commit(asio::buffer_copy(dbuf.prepare(head.size()), asio::buffer(head)));
  clock.buffered = &dbuf;
  thread_local Rng rng{std::random_device{}()};
  // Kept for the connection's life, so their storage is reused by each request.
  std::vector<std::pair<std::string_view, std::string_view>> headers;
  // The HTTP/2 forwarding's body buffer, made on first use (the HTTP/1.1 relay reads into the
  // connection's own buffer).
  std::unique_ptr<char[]> h2_chunk;
  Http1Head req, answer;
  BodyDecoder body;
  std::string wire;
  RelayScratch scratch;
  AuthorityCache authorities;
  const std::string inbound_cluster = "inbound|" + std::to_string(ctx.original.port()) + "||";
  const std::string peer_ip = ctx.peer.address().to_string();

  for (;;) {
    AccessEntry entry;
    clock.deadline = std::chrono::steady_clock::now() + ctx.header_timeout;
    clock.awaiting_header = true;
    clock.park = clock.parked = false;
    size_t head_length = 0;
    error_code hec;
    for (;;) {
      hec = co_await ReadRawHeader(down, dbuf, kMaxHeaderBytes, head_length, kRequestWaitRead);
      if (hec != asio::error::operation_aborted || !std::exchange(clock.park, false)) break;
      // Parked (see kParkAfter): the session ends and gives the idle socket back; what the
      // next request needs is made again, by a new session, when its bytes come.
      parked_total.fetch_add(1, std::memory_order_relaxed);
      clock.parked_out = true;
      co_return;
    }
    clock.awaiting_header = false;
    if (hec == asio::error::eof || hec == asio::error::connection_reset || hec == asio::error::operation_aborted) co_return;
    const char* problem = nullptr;
    if (!hec) {
      problem = req.ParseRequest({static_cast<const char*>(dbuf.data().data()), head_length});
      dbuf.consume(head_length);
    }
    if (hec || problem) {
      std::string why = problem ? problem : hec.message();
      entry.code = hec == boost::beast::http::error::header_limit || problem == kTooManyFields ? 431
                   : problem == kUnsupportedCoding                                               ? 501
                                                                                                 : 400;
      entry.flags = ResponseFlag::kDownstreamProtocolError;
      co_await LocalReply(down, 11, entry.code, "bad request: " + why + "\n", false);
      LogAccess(ctx, entry);
      co_return;
    }
    if (req.method == "CONNECT") {  // no tunnels through the sidecar; its HTTP/2 side answers the same
      entry.method = req.method;
      entry.authority = req.target;
      entry.code = 501;
      entry.flags = ResponseFlag::kDownstreamProtocolError;
      co_await LocalReply(down, req.version, entry.code, "CONNECT is not proxied\n", false);
      LogAccess(ctx, entry);
      co_return;
    }
    body.Start(req.framing, req.content_length);
    // Hop-by-hop fields are this connection's alone: gone before routing or the route's edits.
    // An upgrade the mesh passes is asked again of the upstream (over HTTP/1.1: an HTTP/2
    // upstream would need RFC 8441's extended CONNECT).
    const std::string upgrade = UpgradeOf(req);
    req.DropHopByHop();
    if (!upgrade.empty()) {
      req.Add("Connection", "Upgrade");
      req.Add("Upgrade", upgrade);
    }
    if (req.framing == BodyFraming::kChunked) req.Frame(BodyFraming::kChunked, 0);  // one plain "chunked"
    // A client that waits for "100 Continue" before its body hears it from here, as Envoy does
    // (the upstream gets the body without having been asked).
    if (req.version == 11 && !body.done() && AsciiIEquals(req.Get("expect"), "100-continue")) {
      req.Erase("expect");
      if (co_await WriteAll(down, "HTTP/1.1 100 Continue\r\n\r\n")) co_return;
    }
    entry.method = req.method;
    entry.path = req.target;
    entry.authority = req.Get("host");
    StripMeshHeaders(req, ctx.inbound);
    bool keep_alive = req.keep_alive && !(ctx.draining && *ctx.draining);

    // Where it goes: inbound to the app; outbound by route, by the newest snapshot (the last
    // request, the only one that pointed into the previous one, is over).
    FollowCurrentSnapshot(ctx);
    RouteDecision d;
    tcp::endpoint uep;
    if (ctx.inbound) {
      entry.cluster = inbound_cluster;
      uep = ctx.original;
    } else {
      // Views into the request head's own storage; the router compares names case-insensitively.
      headers.clear();
      for (const auto& f : req.fields) headers.emplace_back(f.name, f.value);
      RequestView view{.method = entry.method, .path = entry.path, .authority = entry.authority, .headers = &headers,
                       .source_labels = &ctx.table->snapshot().workload.labels,
                       .port = static_cast<uint32_t>(ctx.original.port()), .source_ip = peer_ip};
      // The service the authority names, else the one the connection was addressed to.
      const VirtualHost* vh = authorities.Find(*ctx.table, entry.authority, ctx.original.port());
      if (!vh) vh = ctx.host;
      d = Decide(vh, *ctx.table, view, rng, SteadyNowNs());
      if (d.route && d.route->spec) entry.route = d.route->virtual_service;
      entry.cluster = d.cluster_name;
      if (d.endpoint) uep = ToEndpoint(*d.endpoint);
      else if (d.passthrough) uep = ctx.original;
    }
    auto local = [&](unsigned status, std::string body_text, ResponseFlags flags, std::string location = "",
                     std::optional<int> grpc_status = std::nullopt) -> Awaitable<bool> {
      entry.flags |= flags;
      entry.code = status;
      if (!body.done()) keep_alive = false;  // a body we answer without reading ends the connection
      error_code ec = co_await LocalReply(down, req.version, status, body_text, keep_alive, location, grpc_status);
      LogAccess(ctx, entry);
      co_return !ec && keep_alive;
    };
    if (ctx.inbound_limit && !ctx.inbound_limit->TryTake()) {
      if (!co_await local(429, "local_rate_limited\n", ResponseFlag::kRateLimited)) co_return;
      continue;
    }
    if (d.local_status) {
      if (d.delay.count() > 0) {  // a fault's delay and abort both drawn: the delay first
        Timer delay(ex, d.delay);
        co_await delay.async_wait(kNoThrow);
      }
      if (!co_await local(d.local_status, std::move(d.local_body), d.flags, d.location, d.local_grpc_status)) co_return;
      continue;
    }
    RequestInFlight in_flight;  // http2MaxRequests
    if (!in_flight.Enter(d.cluster)) {
      if (!co_await local(503, AnswerFor(ResponseFlag::kUpstreamOverflow).body, ResponseFlag::kUpstreamOverflow)) co_return;
      continue;
    }
    if (d.delay.count() > 0) {  // fault injection: hold the request, then forward it (flag DI)
      Timer delay(ex, d.delay);
      co_await delay.async_wait(kNoThrow);
      entry.flags |= ResponseFlag::kDelayInjected;
    }
    entry.upstream = uep;
    // The request as the upstream gets it.
    const istio::HttpRoute* spec = d.route ? d.route->spec : nullptr;
    if (spec) {
      if (spec->rewrite) {
        req.SetTarget(RewritePath(entry.path, *d.route, *spec->rewrite));
        if (spec->rewrite->authority) req.Set("host", *spec->rewrite->authority);
      }
      ApplyHeaderOps(req, spec->headers.request);
    }
    if (d.picked && d.picked->headers) ApplyHeaderOps(req, d.picked->headers->request);
    bool http2 = upgrade.empty() && (ctx.inbound ? AppSpeaksHttp2(ctx.app_protocol, false)
                                                 : UpstreamSpeaksHttp2(*d.cluster, d.endpoint, false));
    // Inbound: the app is the only upstream, no retries nor timeout.
    AttemptLoop attempts(d.route, ctx.inbound ? nullptr : d.cluster, d.endpoint, uep, d.hash, req.method, false);
    std::span<char> chunk;
    if (http2) {
      if (!h2_chunk) h2_chunk = std::make_unique_for_overwrite<char[]>(kH2Chunk);
      chunk = {h2_chunk.get(), kH2Chunk};
    }
    ForwardRequest x{.down = down, .dbuf = dbuf, .req = req, .body = body, .answer = answer, .wire = wire,
                     .scratch = scratch, .chunk = chunk, .ctx = ctx, .d = d, .attempts = attempts, .rng = rng,
                     .entry = entry, .keep_alive = keep_alive, .ex = ex, .upgrade = upgrade};
    // (Not one conditional expression with a co_await in each arm: GCC 12 destroys its
    // temporary twice.)
    ForwardOutcome out;
    if (http2) out = co_await ForwardToHttp2(x, *ctx.h2_pool);
    else out = co_await ForwardToHttp1(x);
    if (out.body_error) {  // the client's body was malformed
      co_await local(400, "bad request: " + out.local_body, out.flags | ResponseFlag::kDownstreamProtocolError);
      co_return;
    }
    if (out.local_status) {
      if (out.close) keep_alive = false;
      if (!co_await local(out.local_status, std::move(out.local_body), out.flags)) co_return;
      continue;
    }
    entry.flags |= out.flags;
    LogAccess(ctx, entry);
    if (out.close || !keep_alive) co_return;
  }
}

uint64_t ParkedConnectionsTotal() { return parked_total.load(std::memory_order_relaxed); }

Awaitable<Http1SessionEnd> ServeHttp1(Socket& down, std::string head, HttpContext& ctx) {
  HeaderClock clock{.deadline = std::chrono::steady_clock::now() + ctx.header_timeout};
  co_await (ServeRequests(down, std::move(head), ctx, clock) || HeaderWatchdog(clock, down, ctx.header_timeout));
  if (clock.parked_out) co_return Http1SessionEnd{.parked = true, .idle_deadline = clock.deadline};
  if (clock.cut_mid_header) {
    AccessEntry entry;
    entry.code = 408;
    entry.flags = ResponseFlag::kDownstreamProtocolError;
    co_await LocalReply(down, 11, entry.code, "request header timeout\n", false);
    LogAccess(ctx, entry);
  }
  co_return Http1SessionEnd{};
}

}  // namespace tern::proxy
