// An HTTP/1.1 client's request forwarded to an HTTP/1.1 upstream: a pooled connection per try,
// the request relayed as the client sends it, the answer relayed as it streams, a WebSocket
// upgrade turned into a tunnel; the request's AttemptLoop says what follows each try.
#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/beast/http/error.hpp>

#include "core/base/ascii.h"
#include "proxy/header_limits.h"
#include "proxy/http1_forward.h"
#include "proxy/http1_pool.h"
#include "proxy/mirror.h"
#include "proxy/batched_send.h"
#include "proxy/tcp_pipe.h"

namespace tern::proxy {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;
using error_code = boost::system::error_code;

void ApplyHeaderOps(Http1Head& h, const istio::HeaderOperations& ops) {
  for (const auto& name : ops.remove) h.Erase(name);
  for (const auto& [name, value] : ops.set) h.Set(name, value);
  for (const auto& [name, value] : ops.add) h.Add(name, value);
}

Awaitable<void> NextTry(ForwardRequest& x) {
  Timer backoff(x.ex, x.attempts.Backoff(x.rng));
  co_await backoff.async_wait(kNoThrow);
  x.attempts.MoveOn(x.rng);
}

namespace {

// After a 101 to an upgrade: the 101 goes to the client with the upstream's Upgrade, then the
// bytes flow both ways untouched (what either side sent early first) until each side has
// closed, each FIN passed on as a half-close, or until the tunnel idles past `idle_timeout`
// (its destination's connectionPool idleTimeout, 1 h by default; flag SI).
Awaitable<void> Tunnel(Socket& down, boost::beast::flat_buffer& dbuf, Http1Conn& conn, Http1Head& res,
                       const std::string& protocol, std::string& wire, std::chrono::milliseconds idle_timeout,
                       ResponseFlags& flags) {
  res.Add("Connection", "Upgrade");
  res.Add("Upgrade", protocol);
  wire.clear();
  res.AppendTo(wire, true, 11);
  wire.append(static_cast<const char*>(conn.buffer.data().data()), conn.buffer.size());  // the upstream's first bytes
  conn.buffer.consume(conn.buffer.size());
  if (co_await WriteAll(down, wire)) co_return;
  if (dbuf.size() > 0) {  // the client's first bytes, sent before it saw the 101
    std::string early(static_cast<const char*>(dbuf.data().data()), dbuf.size());
    dbuf.consume(dbuf.size());
    if (co_await WriteAll(conn.socket, early)) co_return;
  }
  uint64_t up = 0, back = 0;
  // Until both sides have closed, or the tunnel idles past its destination's idle timeout.
  auto result = co_await ((Pipe(down, conn.socket, up) && Pipe(conn.socket, down, back)) ||
                          IdleWatch([&] { return up + back; }, idle_timeout, [&] {
                            boost::system::error_code ignored;
                            CloseSocket(conn.socket, ignored);
                            CloseSocket(down, ignored);
                          }));
  if (result.index() == 1) flags |= ResponseFlag::kStreamIdleTimeout;
}

// An attempt's answer head, read after its request went out: interim answers (1xx but 101)
// dropped, a bounded number of them; a 101 only as the answer to the upgrade asked (its Upgrade
// in `switched_to`). The failure, if it is none.
Awaitable<ResponseFlag> ReadAnswerHead(ForwardRequest& x, Http1Conn& conn, std::string& switched_to) {
  Http1Head& res = x.answer;
  const auto try_until = x.attempts.TryDeadline();
  if (try_until != AttemptLoop::Clock::time_point::max()) conn.Arm(try_until);
  error_code uec;
  const char* problem = nullptr;
  for (int interim = 0; interim <= kMaxInterimAnswers; ++interim) {
    size_t length = 0;
    uec = co_await ReadRawHeader(conn.socket, conn.buffer, kMaxHeaderBytes, length);
    if (uec) break;
    problem = res.ParseResponse({static_cast<const char*>(conn.buffer.data().data()), length}, x.req.method == "HEAD");
    conn.buffer.consume(length);
    if (problem || res.status >= 200 || res.status == 101) break;
  }
  switched_to = !uec && !problem && res.status == 101 ? std::string(res.Get("upgrade")) : "";
  if (!uec && !problem && res.status == 101 && (x.upgrade.empty() || !AsciiIEquals(switched_to, x.upgrade))) {
    problem = "a 101 to a request that asked no such upgrade";
  }
  res.DropHopByHop();  // the upstream's connection fields, before the route adds its own
  if (conn.Disarm() && uec) co_return ResponseFlag::kUpstreamRequestTimeout;  // the deadline cut the read
  if (!uec && !problem && (res.status >= 200 || res.status == 101)) co_return ResponseFlag::kNone;
  // Bytes that are no HTTP/1.1 answer (or too long a head, or interim answers without end):
  // 502; the connection ended or reset first: 503.
  const bool garbage = problem || !uec || uec == boost::beast::http::error::header_limit ||
                       uec == boost::beast::http::error::bad_line_ending;
  co_return garbage ? ResponseFlag::kUpstreamProtocolError : ResponseFlag::kUpstreamConnectionTermination;
}

}  // namespace

// Forwards x's request, attempt after attempt as the loop says, and relays the answer. The
// first attempt reads the request from the client as it goes (a copy kept for a retry or a
// mirror, up to kMaxMirroredBody); later ones send the copy, framed by its length. Nothing is
// retried once the answer began to reach the client.
Awaitable<ForwardOutcome> ForwardToHttp1(ForwardRequest& x) {
  using Clock = AttemptLoop::Clock;
  Http1Head& req = x.req;
  AttemptLoop& loop = x.attempts;
  Http1Pool& pool = *x.ctx.http1_pool;
  // The route's timeout runs from when the whole request was received (Envoy's rule): an upload
  // takes what it takes. Until then only the connect timeout bounds the pool wait.
  if (x.body.done()) loop.RequestComplete();
  // Connection is hop-by-hop (dropped at parse): the upstream connection stays alive for the
  // pool whatever the client asked of its own.
  x.wire.clear();
  req.AppendTo(x.wire, true);
  const bool chunked_body = x.body.framing() == BodyFraming::kChunked;
  Tee tee{.limit = kMaxMirroredBody};  // the request body, kept for a retry or a mirror
  tee.keep = loop.may_retry() || x.d.mirror;
  std::string replay;       // the request as later tries send it
  std::string switched_to;  // the upstream's Upgrade, with its 101
  bool relayed = false, mirrored = false;
  ForwardOutcome out;
  // Bounded by the loop's attempts, and one stale connection replaced.
  for (int round = 0; round <= loop.max_attempts(); ++round) {
    x.entry.upstream = loop.to();
    loop.Begin();
    Http1Pool::Lease lease{pool.TakeIdle(loop.to(), loop.cluster())};  // without a coroutine frame when one idles
    if (!lease.conn) {
      auto wait_until = std::min(loop.give_up(), Clock::now() + x.ctx.connect_timeout);
      lease = co_await pool.Acquire(loop.to(), loop.cluster(), x.ctx.inbound, x.ctx.connect_timeout, wait_until);
    }
    AttemptResult result{.failure = lease.failure, .reused_connection = lease.conn && lease.conn->reused};
    if (lease.conn) {
      Http1Conn& conn = *lease.conn;
      if (!relayed) {  // the first try reads the request from the client as it goes
        relayed = true;
        RelayError rec = co_await RelayMessage(x.down, x.dbuf, x.body, x.wire, conn.socket, chunked_body, x.scratch, &tee);
        if (rec && rec.reading) {
          pool.Release(std::move(lease.conn), false);
          out.local_status = 400;
          out.local_body = std::string(rec.problem ? rec.problem : rec.ec.message()) + "\n";
          out.body_error = true;
          co_return out;
        }
        if (rec) result.failure = ResponseFlag::kUpstreamConnectionTermination;
        loop.RequestComplete();
      } else {  // later ones send the copy, framed by its length
        if (replay.empty()) {
          if (chunked_body) req.Frame(BodyFraming::kLength, tee.body.size());
          req.AppendTo(replay, true);
          replay.append(tee.body);
        }
        if (co_await WriteAll(conn.socket, replay)) result.failure = ResponseFlag::kUpstreamConnectionTermination;
      }
      if (result.failure == ResponseFlag::kNone && x.d.mirror && !mirrored && !tee.overflow) {
        mirrored = true;
        std::vector<std::pair<std::string_view, std::string_view>> fields;  // as it went upstream
        for (const auto& f : req.fields) fields.emplace_back(f.name, f.value);
        SendMirror(x.ex, *x.d.mirror, x.rng(), ShadowRequest(req.method, req.target, req.Get("host"), fields, tee.body),
                   x.ctx.connect_timeout);
      }
      if (result.failure == ResponseFlag::kNone) result.failure = co_await ReadAnswerHead(x, conn, switched_to);
      if (result.failure != ResponseFlag::kNone) pool.Release(std::move(lease.conn), false);
    }
    // Sendable again: not read from the client yet, or read whole into the copy.
    result.replayable = !relayed || (x.body.done() && !tee.overflow);
    if (result.failure == ResponseFlag::kNone) result.status = x.answer.status;
    switch (loop.After(result, out.flags)) {
      case NextStep::kReplaceStale: continue;  // at once, on a fresh connection
      case NextStep::kRetry:
        if (lease.conn) pool.Release(std::move(lease.conn), false);  // its answer is dropped
        co_await NextTry(x);
        continue;
      case NextStep::kFail: co_return Failed(out, result.failure);
      case NextStep::kDeliver: break;
    }
    // The answer: relayed as it streams.
    Http1Conn& conn = *lease.conn;
    Http1Head& res = x.answer;
    loop.Answered(res.status);
    x.entry.code = res.status;
    ApplyResponseOps(res, x.d);
    if (res.status == 101) {  // upgraded (checked by ReadAnswerHead): a tunnel until both sides close
      const auto idle_timeout = loop.cluster() ? loop.cluster()->limits.idle_timeout : std::chrono::hours(1);
      co_await Tunnel(x.down, x.dbuf, conn, res, switched_to, x.wire, idle_timeout, out.flags);
      pool.Release(std::move(lease.conn), false);
      out.close = true;
      co_return out;
    }
    // The parser's view: false too when the body ends with the connection.
    const bool upstream_keep = res.keep_alive;
    bool keep_alive = x.keep_alive && !(x.ctx.draining && *x.ctx.draining);  // draining: the last answer
    // The client's framing: a body the upstream ends by closing goes to an HTTP/1.1 client in
    // chunks (its connection lives on); an HTTP/1.0 client takes no chunks: its answer ends with
    // the connection.
    BodyFraming framing = BodyFraming::kNone;
    bool chunk_out = res.framing == BodyFraming::kChunked;
    if (res.framing == BodyFraming::kUntilClose || res.framing == BodyFraming::kChunked) {
      if (req.version == 11 && keep_alive) {
        framing = BodyFraming::kChunked, chunk_out = true;
      } else {
        framing = BodyFraming::kUntilClose, chunk_out = false, keep_alive = false;
      }
      if (res.framing == BodyFraming::kChunked && chunk_out) framing = BodyFraming::kNone;  // framed as it came
    }
    res.Frame(framing, 0);
    x.wire.clear();
    res.AppendTo(x.wire, keep_alive, req.version);
    BodyDecoder answer_body;
    answer_body.Start(res.framing, res.content_length);
    RelayError wec = co_await RelayMessage(conn.socket, conn.buffer, answer_body, x.wire, x.down, chunk_out, x.scratch);
    // Bytes after the answer are no answer to anything: that connection is not reused.
    pool.Release(std::move(lease.conn), !wec && upstream_keep && conn.buffer.size() == 0);
    if (wec && wec.reading && !wec.wrote) {
      // A short body held whole broke off before any of the answer reached the client: the
      // attempt failed as a reset does (for outlier detection and the retries too).
      const AttemptResult broke{.failure = ResponseFlag::kUpstreamConnectionTermination, .replayable = result.replayable};
      if (loop.After(broke, out.flags) == NextStep::kRetry) {
        co_await NextTry(x);
        continue;
      }
      co_return Failed(out, broke.failure);
    }
    if (wec && wec.reading) out.flags |= ResponseFlag::kUpstreamProtocolError;  // the upstream's body broke off or was malformed
    out.close = wec || !keep_alive;
    co_return out;
  }
  out.flags |= ResponseFlag::kUpstreamConnectionTermination;
  co_return Failed(out, ResponseFlag::kUpstreamConnectionTermination);  // unreachable: the loop bounds the rounds
}

}  // namespace tern::proxy
