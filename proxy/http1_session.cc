#include "proxy/http1_session.h"

#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/beast/http/error.hpp>
#include <atomic>
#include <random>
#include <span>

#include "core/base/ascii.h"
#include "proxy/access_log.h"
#include "proxy/h2_upstream_pool.h"
#include "proxy/header_limits.h"
#include "proxy/http1_codec.h"
#include "proxy/http1_pool.h"
#include "proxy/http1_relay.h"
#include "proxy/mesh_headers.h"
#include "proxy/mirror.h"
#include "proxy/request_accounting.h"
#include "proxy/tcp_pipe.h"
#include "proxy/route_decision.h"
#include "proxy/upstream_connect.h"

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

void ApplyHeaderOps(Http1Head& h, const istio::HeaderOperations& ops) {
  for (const auto& name : ops.remove) h.Erase(name);
  for (const auto& [name, value] : ops.set) h.Set(name, value);
  for (const auto& [name, value] : ops.add) h.Add(name, value);
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

// After a 101 to an upgrade: the 101 goes to the client with the upstream's Upgrade, then the
// bytes flow both ways untouched (what either side sent early first) until each side has
// closed, each FIN passed on as a half-close.
Awaitable<void> Tunnel(Socket& down, boost::beast::flat_buffer& dbuf, Http1Conn& conn, Http1Head& res,
                       const std::string& protocol, std::string& wire) {
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
  co_await (Pipe(down, conn.socket, up) && Pipe(conn.socket, down, back));
}

// The header timeout without a timer update per request: the request loop moves a deadline
// forward (a plain store), and one watchdog per connection sleeps until it and ends the
// connection if a header is still awaited then.
//
// The same watchdog parks a connection that has idled kParkAfter between requests: it cancels
// the pending read, and the session gives back its read buffer and its heads' storage and waits
// for the socket to become readable with no buffer at all (as HAProxy does): an idle keep-alive
// client holds no read buffer, only the connection's coroutine frames (about 6 KB today, see
// bench/idle_connections.sh). A busy connection never parks and pays nothing for it: no timer
// is armed per request.
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

// What became of a request sent over HTTP/2: answered (code), or a local answer to give.
struct H2Outcome {
  unsigned code = 0;
  unsigned local_status = 0;
  std::string local_body;
  std::string flags = "-";
  bool close = false;  // the client connection must end (a broken answer, a broken request)
};

constexpr size_t kH2RequestBuffer = 256 * 1024;  // read no further ahead of the upstream
constexpr size_t kH2Chunk = 16384;                // what one step moves between client and stream

// An HTTP/1.1 client's request on a pooled HTTP/2 stream: what the stream hears is buffered
// here, and the session's coroutine, waiting on `wake`, takes it in its own time; flow control
// is end to end (the upstream's window opens only as the client takes the answer).
class BufferedH2Stream final : public H2UpstreamStream {
 public:
  explicit BufferedH2Stream(const Executor& ex) : wake_(ex) {}
  ByteQueue request_body;
  bool request_end = false;
  AnswerHeaders answer;
  bool connected = false, headers_done = false, end = false, connect_failed = false, protocol_error = false;
  uint32_t closed_code = NGHTTP2_NO_ERROR;  // the stream's, when it closed (REFUSED_STREAM: never processed)
  ByteQueue body;

  bool over() const { return !open(); }  // ended, reset, or its connection lost
  Awaitable<void> Wait() {
    wake_.expires_at(Timer::time_point::max());
    co_await wake_.async_wait(kNoThrow);
  }

  int OnAnswerField(std::string_view name, std::string_view value) override {
    // Past the bounds the stream is reset (the client gets 503 or a closed connection).
    return answer.Add(name, value) ? 0 : NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  }
  void OnAnswerFrame(const nghttp2_frame& f) override {
    if (f.hd.type == NGHTTP2_HEADERS && answer.End() == AnswerHeaders::Block::kInterim) return;
    if (f.hd.type == NGHTTP2_HEADERS) headers_done = true;
    if (f.hd.flags & NGHTTP2_FLAG_END_STREAM) end = true;
    wake_.cancel();
  }
  void OnAnswerData(const uint8_t* data, size_t size) override {
    body.Append(data, size);
    wake_.cancel();
  }
  void OnConnected() override {
    connected = true;
    wake_.cancel();
  }
  void OnClosed(uint32_t error_code) override {
    closed_code = error_code;
    wake_.cancel();
  }
  void OnConnectionLost(ConnectionLoss loss) override {
    connect_failed = loss == ConnectionLoss::kConnectFailed;
    protocol_error = loss == ConnectionLoss::kProtocolError;
    wake_.cancel();
  }
  ssize_t ReadRequestBody(nghttp2_session*, uint8_t* buf, size_t length, uint32_t* flags) override {
    size_t n = request_body.Take(buf, length);
    if (n > 0) wake_.cancel();  // room for more of the client's body
    if (request_body.size() == 0) {
      if (!request_end) return n > 0 ? static_cast<ssize_t>(n) : static_cast<ssize_t>(NGHTTP2_ERR_DEFERRED);
      *flags |= NGHTTP2_DATA_FLAG_EOF;
    }
    return static_cast<ssize_t>(n);
  }

 private:
  Timer wake_;  // cancelled whenever something changed
};

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
  Rng& rng;
  AccessEntry& entry;
  bool keep_alive;
  Executor ex;
  tcp::endpoint uep;
  const std::string& upgrade;  // the protocol the request asks to switch to ("" for none)
};

// Before a retry: the backoff, then its endpoint (the last one stands when no other fits).
Awaitable<void> NextTry(ForwardRequest& x, const Retrier& retrier, std::chrono::steady_clock::time_point give_up,
                              const UpstreamEndpoint*& endpoint, tcp::endpoint& to) {
  Timer backoff(x.ex, retrier.Backoff(x.rng, give_up));
  co_await backoff.async_wait(kNoThrow);
  if (const UpstreamEndpoint* next = RetryEndpoint(x.d.cluster, x.d.hash, endpoint, false, x.rng, SteadyNowNs())) {
    endpoint = next;
    to = ToEndpoint(*next);
  }
}

// One HTTP/1.1 request forwarded as an HTTP/2 stream, its answer written back as HTTP/1.1. The
// request's fields cross over lowercase without the connection-specific ones; the answer's
// trailers are dropped (an HTTP/1.1 client did not ask for them). A stream that fails before
// its answer (or answers a status the route retries on) is tried again on another endpoint, as
// over HTTP/1.1 (the body kept up to kMaxMirroredBody). An answer that breaks off after its
// header ends the client connection: never a truncated answer presented as whole.
Awaitable<H2Outcome> ForwardOverHttp2(ForwardRequest& x, H2UpstreamPool& pool) {
  using Clock = std::chrono::steady_clock;
  Http1Head& req = x.req;
  const istio::HttpRoute* spec = x.d.route ? x.d.route->spec : nullptr;
  const istio::Headers* picked = x.d.picked ? x.d.picked->headers : nullptr;
  const auto timeout = RouteTimeout(x.d.route);
  const Cluster* cluster = x.ctx.inbound ? nullptr : x.d.cluster;
  Retrier retrier(x.ctx.inbound || !x.d.route ? nullptr : &x.d.route->retry, cluster, req.method);
  const UpstreamEndpoint* endpoint = x.d.endpoint;
  tcp::endpoint to = x.uep;
  Headers h{{":method", std::string(req.method)},
            {":scheme", "http"},
            {":authority", std::string(req.Get("host"))},
            {":path", std::string(req.target)}};
  for (const auto& f : req.fields) {
    std::string name = AsciiLower(f.name);
    if (name == "host" || IsHopByHop(name)) continue;
    h.emplace_back(std::move(name), std::string(f.value));
  }
  const bool has_body = !x.body.done();
  Tee kept{.limit = kMaxMirroredBody};  // the body as sent, for a retry
  kept.keep = retrier.max_retries() > 0;
  H2Outcome out;
  auto give_up = Clock::time_point::max();
  auto uchunk = reinterpret_cast<const uint8_t*>(x.chunk.data());
  std::unique_ptr<BufferedH2Stream> s;
  // Lets go of the stream: reset when still open.
  auto release = [&] { pool.Release(*s); };
  for (int round = 0; round <= retrier.max_retries(); ++round) {
    x.entry.upstream = to;
    EndpointLoad load(endpoint);
    s = std::make_unique<BufferedH2Stream>(x.ex);
    if (const char* refused = pool.Open(*s, to, cluster, x.ctx.inbound, x.ctx.connect_timeout, h, has_body)) {
      FailureAnswer answer = AnswerFor(refused);
      AddFlag(out.flags, refused);
      out.local_status = answer.status;
      out.local_body = answer.body;
      co_return out;
    }
    if (round == 0) {  // the first try reads the body from the client as it goes
      while (!x.body.done() && !s->over()) {
        if (s->request_body.size() >= kH2RequestBuffer) {
          co_await s->Wait();
          continue;
        }
        BodyRead r = co_await ReadBody(x.down, x.dbuf, x.body, x.chunk);
        if (r.error) {
          release();
          std::string why = r.error.problem ? r.error.problem : r.error.ec.message();
          co_return H2Outcome{.local_status = 400, .local_body = "bad request: " + why + "\n", .flags = "DPE", .close = true};
        }
        kept.Add({x.chunk.data(), r.n});
        s->request_body.Append(uchunk, r.n);
        pool.Resume(*s);
      }
    } else if (has_body) {
      s->request_body.Append(kept.body);
    }
    // The upstream may end the stream (answer, or reset) before taking the whole body: the rest
    // of it is still on this connection and must never be read as a next request.
    const bool body_unread = !x.body.done();
    out.close = body_unread;
    if (has_body && !body_unread) {
      s->request_end = true;
      pool.Resume(*s);
    }
    if (timeout && give_up == Clock::time_point::max()) give_up = Clock::now() + *timeout;  // from the request's end
    // The route's timeout holds from now; the try's own once its connection is up (OnConnected).
    auto try_until = give_up;
    bool try_clock = false;
    Timer deadline(x.ex, try_until);
    // The answer's head; and a short body whole (kHoldBytes), as over HTTP/1.1: one that breaks
    // off then reached nobody, and the attempt failed.
    auto answered = [&] {
      if (!s->headers_done) return false;
      const auto length = s->answer.content_length();
      return s->end || !length || *length > kHoldBytes;
    };
    while (!answered() && !s->over() && Clock::now() < try_until) {
      if (s->connected && !try_clock) {
        try_clock = true;
        try_until = retrier.TryDeadline(give_up);
        deadline.expires_at(try_until);
      }
      co_await (s->Wait() || deadline.async_wait(kNoThrowAwaitable));
    }
    const char* flag = answered()          ? nullptr
                       : !s->over()        ? "UT"
                       : s->connect_failed ? "UF"
                       : s->protocol_error ? "UPE"
                                           : "UC";
    AttemptFailure failure = flag ? FailureOf(flag) : AttemptFailure::kNone;
    if (flag && s->closed_code == NGHTTP2_REFUSED_STREAM) failure = AttemptFailure::kRefusedStream;  // never processed
    const unsigned status = flag ? 0 : s->answer.status();
    RecordAttempt(cluster, endpoint, failure, status);
    if (retrier.Again(failure, status, !body_unread && !kept.overflow, give_up, out.flags,
                      flag ? std::nullopt : s->answer.grpc_status())) {
      release();  // its answer, if any, is dropped
      co_await NextTry(x, retrier, give_up, endpoint, to);
      continue;
    }
    if (flag) {
      release();
      FailureAnswer answer = AnswerFor(flag);
      AddFlag(out.flags, flag);
      out.local_status = answer.status;
      out.local_body = answer.body;
      co_return out;
    }
    break;
  }
  Http1Head& res = x.answer;
  res.StartResponse(s->answer.status());
  for (const auto& [n, v] : s->answer.response) {
    if (n[0] != ':') res.Add(n, v);
  }
  if (spec) ApplyHeaderOps(res, spec->headers.response);
  if (picked) ApplyHeaderOps(res, picked->response);
  // Framed by its length when the upstream gave one (or it is over and empty), else chunked; an
  // HTTP/1.0 client cannot take chunks: its answer ends with the connection.
  const bool may_have_body = res.status >= 200 && res.status != 204 && res.status != 304 && req.method != "HEAD";
  bool keep_alive = x.keep_alive && !out.close;
  bool chunked = false;
  if (may_have_body && !res.Find("content-length")) {
    if (s->end && s->body.size() == 0) {
      res.Frame(BodyFraming::kLength, 0);
    } else if (req.version == 11) {
      res.Frame(BodyFraming::kChunked, 0);
      chunked = true;
    } else {
      keep_alive = false;
    }
  }
  out.close = out.close || !keep_alive;
  out.code = res.status;
  x.wire.clear();
  res.AppendTo(x.wire, keep_alive, req.version);
  bool header_written = false;
  char size_line[20];
  for (;;) {
    size_t n = s->body.Take(reinterpret_cast<uint8_t*>(x.chunk.data()), x.chunk.size());
    if (n > 0) pool.Consumed(*s, n);
    bool last = s->end && s->body.size() == 0;
    if (n == 0 && !last && header_written) {
      if (s->over()) {  // broke off mid-answer
        AddFlag(out.flags, "UPE");
        out.close = true;
        break;
      }
      co_await s->Wait();
      continue;
    }
    std::array<asio::const_buffer, 5> gather;
    size_t g = 0;
    if (!header_written) gather[g++] = asio::buffer(x.wire);
    if (n > 0 && chunked) gather[g++] = asio::buffer(size_line, ChunkHeader(n, size_line));
    if (n > 0) gather[g++] = asio::buffer(x.chunk.data(), n);
    if (n > 0 && chunked) gather[g++] = asio::buffer(kCrlf);
    if (last && chunked) gather[g++] = asio::buffer(kLastChunk);
    auto [wec, wn] = co_await asio::async_write(x.down, std::span<const asio::const_buffer>(gather.data(), g), kNoThrow);
    header_written = true;
    if (wec) {
      AddFlag(out.flags, "DC");  // the client went away
      out.close = true;
      break;
    }
    if (last) break;
  }
  release();  // done with it (no reset when the stream is over)
  co_return out;
}

// How it ended: answered (relayed to the client), or a local answer the caller gives.
struct ExchangeEnd {
  unsigned local_status = 0;
  std::string local_body;
  std::string flags;
  bool body_error = false;  // the client's body was malformed (400, the connection ends)
  bool close = false;       // the client connection must end
};

// The local answer for an upstream failure with `flag`.
ExchangeEnd& Failed(ExchangeEnd& end, std::string_view flag) {
  FailureAnswer a = AnswerFor(flag);
  end.local_status = a.status;
  end.local_body = a.body;
  AddFlag(end.flags, flag);
  return end;
}

// Forwards x's request with the route's retries (retry_policy.h) and relays the answer. An
// attempt fails by connect failure (UF), reset (UC), per-try timeout (UT) or a retriable
// status; the next goes to another endpoint after a backoff, while attempts, the route's
// timeout and the retry budget allow. A kept-alive connection the upstream closed meanwhile
// is replaced once, unseen, for requests safe to send again. Nothing is retried once the
// answer began to reach the client.
Awaitable<ExchangeEnd> ForwardHttp1(ForwardRequest& x) {
  using Clock = std::chrono::steady_clock;
  Http1Head& req = x.req;
  const std::string_view method = req.method;
  const Cluster* cluster = x.ctx.inbound ? nullptr : x.d.cluster;
  Retrier retrier(x.ctx.inbound || !x.d.route ? nullptr : &x.d.route->retry, cluster, method);
  const auto route_timeout = RouteTimeout(x.d.route);
  // The route's timeout runs from when the whole request was received (Envoy's rule): an upload
  // takes what it takes. Until then only the connect timeout bounds the pool wait.
  auto give_up = route_timeout && x.body.done() ? Clock::now() + *route_timeout : Clock::time_point::max();
  const UpstreamEndpoint* endpoint = x.d.endpoint;
  tcp::endpoint uep = x.uep;
  // Connection is hop-by-hop (dropped at parse): the upstream connection stays alive for the
  // pool whatever the client asked of its own.
  x.wire.clear();
  req.AppendTo(x.wire, true);
  const bool chunked_body = x.body.framing() == BodyFraming::kChunked;
  Tee tee{.limit = kMaxMirroredBody};  // the request body, kept for a retry or a mirror
  tee.keep = retrier.max_retries() > 0 || x.d.mirror;
  std::string replay;  // the request as later tries send it
  std::string switched_to;  // the upstream's Upgrade, with its 101
  bool relayed = false, mirrored = false, stale_replaced = false;
  ExchangeEnd end;
  for (int round = 0; round <= retrier.max_retries() + 1; ++round) {
    x.entry.upstream = uep;
    EndpointLoad load(endpoint);
    Http1Pool::Lease lease{x.ctx.http1_pool->TakeIdle(uep, cluster)};  // without a coroutine frame when one idles
    if (!lease.conn) {
      auto wait_until = std::min(give_up, Clock::now() + x.ctx.connect_timeout);
      lease = co_await x.ctx.http1_pool->Acquire(uep, cluster, x.ctx.inbound, x.ctx.connect_timeout, wait_until);
    }
    if (lease.failure && std::string_view(lease.failure) == "UO") co_return Failed(end, "UO");  // never retried
    AttemptFailure failure = lease.conn ? AttemptFailure::kNone : AttemptFailure::kConnectFailure;
    const char* flag = lease.conn ? nullptr : "UF";
    const bool reused = lease.conn && lease.conn->reused;
    Http1Head& res = x.answer;
    if (lease.conn) {
      Http1Conn& conn = *lease.conn;
      if (!relayed) {  // the first try reads the request from the client as it goes
        relayed = true;
        RelayError rec = co_await RelayMessage(x.down, x.dbuf, x.body, x.wire, conn.socket, chunked_body, x.scratch, &tee);
        if (rec && rec.reading) {
          x.ctx.http1_pool->Release(std::move(lease.conn), false);
          end.local_status = 400;
          end.local_body = std::string(rec.problem ? rec.problem : rec.ec.message()) + "\n";
          end.body_error = true;
          co_return end;
        }
        if (rec) failure = AttemptFailure::kReset, flag = "UC";
        if (route_timeout && give_up == Clock::time_point::max()) give_up = Clock::now() + *route_timeout;
      } else {  // later ones send the copy, framed by its length
        if (replay.empty()) {
          if (chunked_body) req.Frame(BodyFraming::kLength, tee.body.size());
          req.AppendTo(replay, true);
          replay.append(tee.body);
        }
        if (co_await WriteAll(conn.socket, replay)) failure = AttemptFailure::kReset, flag = "UC";
      }
      if (failure == AttemptFailure::kNone && x.d.mirror && !mirrored && !tee.overflow) {
        mirrored = true;
        std::vector<std::pair<std::string_view, std::string_view>> fields;  // as it went upstream
        for (const auto& f : req.fields) fields.emplace_back(f.name, f.value);
        SendMirror(x.ex, *x.d.mirror, x.rng(), ShadowRequest(method, req.target, req.Get("host"), fields, tee.body),
                   x.ctx.connect_timeout);
      }
      if (failure == AttemptFailure::kNone) {
        auto try_until = retrier.TryDeadline(give_up);
        if (try_until != Clock::time_point::max()) conn.Arm(try_until);
        // Interim answers (1xx but 101) are read and dropped, a bounded number of them.
        error_code uec;
        const char* problem = nullptr;
        for (int interim = 0; interim <= kMaxInterimAnswers; ++interim) {
          size_t length = 0;
          uec = co_await ReadRawHeader(conn.socket, conn.buffer, kMaxHeaderBytes, length);
          if (uec) break;
          problem = res.ParseResponse({static_cast<const char*>(conn.buffer.data().data()), length}, method == "HEAD");
          conn.buffer.consume(length);
          if (problem || res.status >= 200 || res.status == 101) break;
        }
        // A 101 answers an upgrade only: its Upgrade goes back to the client (switched_to);
        // one the request did not ask for is no answer to it.
        switched_to = !uec && !problem && res.status == 101 ? std::string(res.Get("upgrade")) : "";
        if (!uec && !problem && res.status == 101 && (x.upgrade.empty() || !AsciiIEquals(switched_to, x.upgrade))) {
          problem = "a 101 to a request that asked no such upgrade";
        }
        res.DropHopByHop();  // the upstream's connection fields, before the route adds its own
        if (conn.Disarm() && uec) failure = AttemptFailure::kTimeout, flag = "UT";  // the deadline cut the read
        if (failure == AttemptFailure::kNone && (uec || problem || (res.status < 200 && res.status != 101))) {
          // Bytes that are no HTTP/1.1 answer (or too long a head): 502; the connection ended or
          // reset first: 503.
          const bool garbage = problem || uec == boost::beast::http::error::header_limit ||
                    uec == boost::beast::http::error::bad_line_ending || !uec;
          failure = garbage ? AttemptFailure::kProtocolError : AttemptFailure::kReset;
          flag = garbage ? "UPE" : "UC";
        }
      }
      if (failure != AttemptFailure::kNone) x.ctx.http1_pool->Release(std::move(lease.conn), false);
    }
    // Sendable again: not read from the client yet, or read whole into the copy.
    const bool replayable = !relayed || (x.body.done() && !tee.overflow);
    // A kept-alive connection the upstream had closed: replaced at once, not counted.
    if (reused && failure == AttemptFailure::kReset && replayable && IsIdempotent(method) && !stale_replaced) {
      stale_replaced = true;
      --round;
      continue;
    }
    const unsigned status = lease.conn && failure == AttemptFailure::kNone ? res.status : 0;
    RecordAttempt(cluster, endpoint, failure, status);
    if (retrier.Again(failure, status, replayable, give_up, end.flags)) {
      if (lease.conn) x.ctx.http1_pool->Release(std::move(lease.conn), false);  // its answer is dropped
      co_await NextTry(x, retrier, give_up, endpoint, uep);
      continue;
    }
    if (failure != AttemptFailure::kNone) co_return Failed(end, flag);
    // The answer: relayed as it streams.
    Http1Conn& conn = *lease.conn;
    x.entry.code = res.status;
    const istio::HttpRoute* spec = x.d.route ? x.d.route->spec : nullptr;
    if (spec) ApplyHeaderOps(res, spec->headers.response);
    if (x.d.picked && x.d.picked->headers) ApplyHeaderOps(res, x.d.picked->headers->response);
    if (res.status == 101) {  // upgraded (checked above): a tunnel until both sides close
      co_await Tunnel(x.down, x.dbuf, conn, res, switched_to, x.wire);
      x.ctx.http1_pool->Release(std::move(lease.conn), false);
      end.close = true;
      co_return end;
    }
    // The parser's view: false too when the body ends with the connection; a 101 switches it
    // to another protocol.
    const bool upstream_keep = res.keep_alive && res.status != 101;
    bool keep_alive = x.keep_alive && !(x.ctx.draining && *x.ctx.draining) && res.status != 101;  // draining: the last answer
    // The client's framing: a body the upstream ends by closing goes to an HTTP/1.1 client in
    // chunks (its connection lives on); an HTTP/1.0 client takes no chunks: its answer ends with
    // the connection.
    BodyFraming out = BodyFraming::kNone;
    bool chunk_out = res.framing == BodyFraming::kChunked;
    if (res.framing == BodyFraming::kUntilClose || res.framing == BodyFraming::kChunked) {
      if (req.version == 11 && keep_alive) {
        out = BodyFraming::kChunked, chunk_out = true;
      } else {
        out = BodyFraming::kUntilClose, chunk_out = false, keep_alive = false;
      }
      if (res.framing == BodyFraming::kChunked && chunk_out) out = BodyFraming::kNone;  // framed as it came
    }
    res.Frame(out, 0);
    x.wire.clear();
    res.AppendTo(x.wire, keep_alive, req.version);
    BodyDecoder answer_body;
    answer_body.Start(res.framing, res.content_length);
    RelayError wec = co_await RelayMessage(conn.socket, conn.buffer, answer_body, x.wire, x.down, chunk_out, x.scratch);
    // Bytes after the answer are no answer to anything: that connection is not reused.
    x.ctx.http1_pool->Release(std::move(lease.conn), !wec && upstream_keep && conn.buffer.size() == 0);
    if (wec && wec.reading && !wec.wrote) {
      // A short body held whole broke off before any of the answer reached the client: the
      // attempt failed as a reset does (for outlier detection and the retries too).
      RecordAttempt(cluster, endpoint, AttemptFailure::kReset, 0);
      if (retrier.Again(AttemptFailure::kReset, 0, replayable, give_up, end.flags)) {
        co_await NextTry(x, retrier, give_up, endpoint, uep);
        continue;
      }
      co_return Failed(end, "UC");
    }
    if (wec && wec.reading) AddFlag(end.flags, "UPE");  // the upstream's body broke off or was malformed
    end.close = wec || !keep_alive;
    co_return end;
  }
  co_return Failed(end, "UC");  // unreachable: every round returns or retries within the bound
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
      parked_total.fetch_add(1, std::memory_order_relaxed);
      // Parked (see kParkAfter): nothing is held while the client idles; what the next
      // request needs is made again when its bytes come.
      dbuf.shrink_to_fit();
      req.ReleaseStorage();
      answer.ReleaseStorage();
      std::string().swap(wire);
      decltype(headers)().swap(headers);
      h2_chunk.reset();
      auto [wec] = co_await down.async_wait(Socket::wait_read, kNoThrow);
      if (wec) {
        hec = wec;
        break;
      }
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
      entry.flags = "DPE";
      co_await LocalReply(down, 11, entry.code, "bad request: " + why + "\n", false);
      LogAccess(ctx, entry);
      co_return;
    }
    if (req.method == "CONNECT") {  // no tunnels through the sidecar; its HTTP/2 side answers the same
      entry.method = req.method;
      entry.authority = req.target;
      entry.code = 501;
      entry.flags = "DPE";
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
    auto local = [&](unsigned status, std::string body_text, std::string flags, std::string location = "",
                     std::optional<int> grpc_status = std::nullopt) -> Awaitable<bool> {
      AddFlag(entry.flags, flags);
      entry.code = status;
      if (!body.done()) keep_alive = false;  // a body we answer without reading ends the connection
      error_code ec = co_await LocalReply(down, req.version, status, body_text, keep_alive, location, grpc_status);
      LogAccess(ctx, entry);
      co_return !ec && keep_alive;
    };
    if (ctx.inbound_limit && !ctx.inbound_limit->TryTake()) {
      if (!co_await local(429, "local_rate_limited\n", "RL")) co_return;
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
      if (!co_await local(503, AnswerFor("UO").body, "UO")) co_return;
      continue;
    }
    if (d.delay.count() > 0) {  // fault injection: hold the request, then forward it (flag DI)
      Timer delay(ex, d.delay);
      co_await delay.async_wait(kNoThrow);
      AddFlag(entry.flags, "DI");
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
    if (http2) {
      if (!h2_chunk) h2_chunk = std::make_unique_for_overwrite<char[]>(kH2Chunk);
      std::span<char> chunk(h2_chunk.get(), kH2Chunk);
      ForwardRequest x{.down = down, .dbuf = dbuf, .req = req, .body = body, .answer = answer, .wire = wire, .scratch = scratch, .chunk = chunk, .ctx = ctx, .d = d, .rng = rng,
                       .entry = entry, .keep_alive = keep_alive, .ex = ex, .uep = uep, .upgrade = upgrade};
      H2Outcome out = co_await ForwardOverHttp2(x, *ctx.h2_pool);
      if (out.local_status) {
        if (!co_await local(out.local_status, out.local_body, out.flags)) co_return;
        continue;
      }
      entry.code = out.code;
      AddFlag(entry.flags, out.flags);
      LogAccess(ctx, entry);
      if (out.close || !keep_alive) co_return;
      continue;
    }
    ForwardRequest x{.down = down, .dbuf = dbuf, .req = req, .body = body, .answer = answer, .wire = wire, .scratch = scratch, .chunk = {}, .ctx = ctx, .d = d, .rng = rng,
                     .entry = entry, .keep_alive = keep_alive, .ex = ex, .uep = uep, .upgrade = upgrade};
    ExchangeEnd end = co_await ForwardHttp1(x);
    if (end.local_status) {
      if (end.body_error) {  // the client's body was malformed
        co_await local(400, "bad request: " + end.local_body, "DPE");
        co_return;
      }
      if (!co_await local(end.local_status, std::move(end.local_body), end.flags)) co_return;
      continue;
    }
    AddFlag(entry.flags, end.flags);
    LogAccess(ctx, entry);
    if (end.close || !keep_alive) co_return;
  }
}

uint64_t ParkedConnectionsTotal() { return parked_total.load(std::memory_order_relaxed); }

Awaitable<void> ServeHttp1(Socket down, std::string head, HttpContext ctx) {
  HeaderClock clock{.deadline = std::chrono::steady_clock::now() + ctx.header_timeout};
  co_await (ServeRequests(down, std::move(head), ctx, clock) || HeaderWatchdog(clock, down, ctx.header_timeout));
  if (clock.cut_mid_header) {
    AccessEntry entry;
    entry.code = 408;
    entry.flags = "DPE";
    co_await LocalReply(down, 11, entry.code, "request header timeout\n", false);
    LogAccess(ctx, entry);
  }
}

}  // namespace tern::proxy
