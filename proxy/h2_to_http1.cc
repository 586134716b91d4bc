// An HTTP/2 client's stream forwarded to an HTTP/1.1 upstream: one coroutine per request takes a
// pooled connection, writes the request as the client streams it, reads the answer's head, and
// relays the answer into the client's stream; the request's AttemptLoop says what follows each
// try.
#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/beast/http/error.hpp>
#include <cstring>
#include <random>

#include "core/base/ascii.h"
#include "proxy/batched_send.h"
#include "proxy/h2_bridge.h"
#include "proxy/header_limits.h"
#include "proxy/http1_codec.h"
#include "proxy/http1_pool.h"
#include "proxy/tcp_pipe.h"

namespace tern::proxy {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;

namespace {

// What a WebSocket upgrade's head adds: Connection, Upgrade and a key.
constexpr size_t kUpgradeFieldsBytes = 96;

// A Sec-WebSocket-Key for the HTTP/1.1 upgrade a WebSocket over HTTP/2 becomes: 16 random bytes
// in base64 (RFC 6455 4.1). Its client sent none (RFC 8441 5); the upstream's accept is checked
// by no one, the tunnel being the client's own WebSocket.
std::string WebSocketKey() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  uint8_t bytes[18] = {};  // 16 random, two zero pads: 24 characters, the last two "=="
  for (int i = 0; i < 16; i += 8) {
    const uint64_t r = rng();
    std::memcpy(bytes + i, &r, 8);
  }
  std::string key;
  for (int i = 0; i < 18; i += 3) {
    const uint32_t v = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    key += kBase64[(v >> 18) & 63];
    key += kBase64[(v >> 12) & 63];
    key += kBase64[(v >> 6) & 63];
    key += kBase64[v & 63];
  }
  key.replace(22, 2, "==");
  return key;
}

// An HTTP/1.1 exchange's 16 KiB body buffer, taken from the worker thread's spares and given
// back after: a stream costs no allocation when one finished before it. The spares are the
// thread's, not a bridge's, so a coroutine frame destroyed late (at shutdown, on another thread)
// never returns its buffer into a bridge that is gone.
constexpr size_t kChunk = 16384;
class SpareChunk {
 public:
  SpareChunk() {
    if (Spares().empty()) {
      chunk_ = std::make_unique_for_overwrite<uint8_t[]>(kChunk);  // uninitialized: written before read
    } else {
      chunk_ = std::move(Spares().back());
      Spares().pop_back();
    }
  }
  ~SpareChunk() {
    if (Spares().size() < kMaxSpares) Spares().push_back(std::move(chunk_));
  }
  SpareChunk(const SpareChunk&) = delete;
  SpareChunk& operator=(const SpareChunk&) = delete;
  uint8_t* get() const { return chunk_.get(); }

 private:
  static constexpr size_t kMaxSpares = 8;
  static std::vector<std::unique_ptr<uint8_t[]>>& Spares() {
    thread_local std::vector<std::unique_ptr<uint8_t[]>> spares;
    return spares;
  }
  std::unique_ptr<uint8_t[]> chunk_;
};

}  // namespace

Awaitable<void> H2Bridge::ForwardHttp1(H2Exchange* ex) {
  using Clock = AttemptLoop::Clock;
  AttemptLoop& loop = *ex->attempts;
  std::unique_ptr<Http1Conn> conn;
  bool keep = false;
  ResponseFlag failure = ResponseFlag::kNone;  // the one that stands, when the attempts end on one
  int* held = nullptr;  // this stream's count in http1_busy_ while it holds one (map entries stay put)
  // Bounded by the loop's attempts, and one stale connection replaced.
  for (int round = 0; round <= loop.max_attempts() && !ex->down_closed(); ++round) {
    const tcp::endpoint to = loop.to();
    ex->entry.upstream = to;
    // At most kMaxHttp1PerEndpoint of this client's streams hold a connection to one endpoint:
    // a client multiplexing a hundred streams must not open a hundred connections at once (a
    // small accept backlog drops them). Streams past it wait, in no particular order.
    int& busy = http1_busy_[to];
    while (busy >= kMaxHttp1PerEndpoint && !ex->down_closed()) {
      // Only waits: re-arming the shared timer would cancel the other waiters (who would
      // re-arm it in turn). Its expiry stays at max; cancel() wakes them all.
      co_await http1_freed_.async_wait(kNoThrow);
    }
    if (ex->down_closed()) break;
    held = &busy;
    ++*held;
    loop.Begin();
    Http1Pool::Lease lease{ctx_.http1_pool->TakeIdle(to, loop.cluster())};
    if (!lease.conn) {
      auto wait_until = std::min(loop.give_up(), Clock::now() + ctx_.connect_timeout);
      lease = co_await ctx_.http1_pool->Acquire(to, loop.cluster(), ctx_.inbound, ctx_.connect_timeout, wait_until);
    }
    conn = std::move(lease.conn);
    AttemptResult result{.failure = lease.failure, .reused_connection = conn && conn->reused};
    auto try_until = loop.TryDeadline();
    if (conn) {
      ex->h1_socket = &conn->socket;
      result.failure = co_await SendOverHttp1(*ex, *conn);
      // The request is whole (or the client is gone): the route's timeout holds from now.
      loop.RequestComplete();
      try_until = std::min(try_until, loop.give_up());
      if (result.failure == ResponseFlag::kNone && !ex->down_closed()) {
        result.failure = co_await ReadHttp1AnswerHead(*ex, *conn, try_until);
      }
    }
    if (ex->down_closed()) break;  // nobody waits for an answer
    result.replayable = !ex->kept.overflow;
    if (result.failure == ResponseFlag::kNone) result.status = conn->answer_head.status;
    NextStep next = loop.After(result, ex->entry.flags);
    if (next == NextStep::kDeliver) {
      failure = co_await RelayHttp1Answer(*ex, *conn, try_until, keep);
      if (failure == ResponseFlag::kNone || ex->response_started() || ex->down_closed()) break;
      // A short body held whole broke off before any of the answer went out: a failed attempt.
      next = loop.After({.failure = failure, .replayable = !ex->kept.overflow}, ex->entry.flags);
    }
    if (next == NextStep::kFail) {
      failure = result.failure == ResponseFlag::kNone ? failure : result.failure;
      break;
    }
    // Another try: this one's connection is closed (its answer, if any, dropped).
    ex->h1_socket = nullptr;
    if (conn) ctx_.http1_pool->Release(std::move(conn), false);
    --*std::exchange(held, nullptr);
    http1_freed_.cancel();
    Requeue(*ex);
    if (next == NextStep::kRetry) {
      Timer backoff(ex_, loop.Backoff(rng_));
      co_await backoff.async_wait(kNoThrow);
      loop.MoveOn(rng_);
    }
  }
  ex->h1_socket = nullptr;
  ex->h1_done = true;
  Credit(*ex, ex->DropRequestBody());
  if (failure != ResponseFlag::kNone) UpstreamFailed(*ex, failure);
  if (conn) ctx_.http1_pool->Release(std::move(conn), keep);
  if (held) --*held;
  http1_freed_.cancel();
  if (ex->Finished()) Retire(*ex);
}

Awaitable<ResponseFlag> H2Bridge::SendOverHttp1(H2Exchange& ex, Http1Conn& conn) {
  Socket& s = conn.socket;
  std::string_view method, path, authority;
  bool has_length = false;
  // The head is sized first and written in one allocation.
  size_t size = sizeof(" HTTP/1.1\r\nhost: \r\ntransfer-encoding: chunked\r\n\r\n") + kUpgradeFieldsBytes;
  for (const auto& [name, value] : ex.upstream_request) {
    const std::string_view n = name, v = value;
    if (n == ":method") method = v;
    else if (n == ":path") path = v;
    else if (n == ":authority") authority = v;
    size += n.size() + v.size() + 4;
  }
  std::string& head = conn.request_head;  // the connection's: no allocation once it has room
  head.clear();
  head.reserve(size);
  using namespace std::string_view_literals;
  head.append(method).append(" "sv).append(path).append(" HTTP/1.1\r\nhost: "sv).append(authority).append("\r\n"sv);
  for (const auto& [name, value] : ex.upstream_request) {
    const std::string_view n = name;
    if (n[0] == ':' || IsHopByHop(n)) continue;
    has_length |= n == "content-length";
    head.append(n).append(": "sv).append(value).append("\r\n"sv);
  }
  if (ex.tunnel) {  // the WebSocket's HTTP/1.1 upgrade: a head, and no body (what follows is the tunnel's)
    head.append("connection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-key: "sv).append(WebSocketKey()).append("\r\n\r\n"sv);
    asio::const_buffer upgrade = asio::buffer(head);
    co_return co_await WriteGather(s, {&upgrade, 1}) ? ResponseFlag::kUpstreamConnectionTermination : ResponseFlag::kNone;
  }
  // Framing: the client's length, else none for an empty body, else chunked as it streams.
  bool chunked = false;
  if (!has_length) {
    if (!(ex.request_end() && ex.request_body.size() == 0)) {
      chunked = true;
      head += "transfer-encoding: chunked\r\n"sv;
    } else if (method == "POST" || method == "PUT" || method == "PATCH") {
      head += "content-length: 0\r\n"sv;
    }
  }
  head += "\r\n";
  asio::const_buffer whole = asio::buffer(head);
  if (co_await WriteGather(s, {&whole, 1})) co_return ResponseFlag::kUpstreamConnectionTermination;
  if (head.capacity() > kKeptHeadBytes) std::string().swap(head);  // an idle connection keeps no large head
  // The body relay buffer: uninitialized (zeroing 16 KiB per request was a quarter of the
  // HTTP/2 path's instructions).
  SpareChunk chunk;
  for (;;) {
    size_t n = ex.request_body.Take(chunk.get(), kChunk);
    if (n > 0) {
      char size_line[20];
      std::array<asio::const_buffer, 3> parts{asio::buffer(size_line, chunked ? ChunkHeader(n, size_line) : 0),
                                              asio::buffer(chunk.get(), n), asio::buffer(kCrlf.data(), chunked ? 2 : 0)};
      auto [wec, wn] = co_await asio::async_write(s, parts, kNoThrow);
      if (wec) co_return ResponseFlag::kUpstreamConnectionTermination;
      // Kept for a retry; the client's window opens only for bytes it was not credited for.
      Credit(ex, ex.Sent(chunk.get(), n));
      continue;
    }
    if (ex.request_end()) break;
    if (ex.down_closed()) co_return ResponseFlag::kNone;  // the client gave up mid-request: nothing more to do
    co_await WaitFor(ex);
  }
  if (chunked && co_await WriteAll(s, kLastChunk)) co_return ResponseFlag::kUpstreamConnectionTermination;

  co_return ResponseFlag::kNone;
}

Awaitable<ResponseFlag> H2Bridge::ReadHttp1AnswerHead(H2Exchange& ex, Http1Conn& conn,
                                                      std::chrono::steady_clock::time_point try_until) {
  boost::beast::flat_buffer& buf = conn.buffer;
  Http1Head& res = conn.answer_head;  // the connection's: its storage is reused answer after answer
  const bool head_request = ex.entry.method == "HEAD";
  for (int interim = 0;; ++interim) {  // 1xx answers are interim: skipped, a bounded number
    if (try_until != std::chrono::steady_clock::time_point::max()) conn.Arm(try_until);
    size_t length = 0;
    boost::system::error_code rec = co_await ReadRawHeader(conn.socket, buf, kMaxHeaderBytes, length);
    if (conn.Disarm() && rec) co_return ResponseFlag::kUpstreamRequestTimeout;  // the deadline cut the read
    if (rec) {
      const bool garbage = rec == boost::beast::http::error::header_limit || rec == boost::beast::http::error::bad_line_ending;
      co_return garbage ? ResponseFlag::kUpstreamProtocolError : ResponseFlag::kUpstreamConnectionTermination;
    }
    const char* problem = res.ParseResponse({static_cast<const char*>(buf.data().data()), length}, head_request);
    buf.consume(length);
    // A 101 answers only a WebSocket's upgrade: to anything else it is no answer.
    if (problem || (res.status == 101 && !(ex.tunnel && AsciiIEquals(res.Get("upgrade"), "websocket")))) {
      co_return ResponseFlag::kUpstreamProtocolError;
    }
    if (res.status == 101) co_return ResponseFlag::kNone;
    if (res.status >= 200) co_return ResponseFlag::kNone;
    if (interim == kMaxInterimAnswers) co_return ResponseFlag::kUpstreamProtocolError;
  }
}

Awaitable<ResponseFlag> H2Bridge::RelayHttp1Answer(H2Exchange& ex, Http1Conn& conn,
                                                   std::chrono::steady_clock::time_point try_until, bool& keep) {
  Socket& s = conn.socket;
  boost::beast::flat_buffer& buf = conn.buffer;
  const Http1Head& res = conn.answer_head;
  if (res.status == 101) co_return co_await RunTunnel(ex, conn);  // upgraded (ReadHttp1AnswerHead checked it)
  ex.answer.response.clear();
  ex.answer.response.reserve(res.fields.size() + 1);
  ex.answer.response.emplace_back(":status", std::to_string(res.status));
  for (const auto& f : res.fields) {
    auto& [name, value] = ex.answer.response.emplace_back(f.name, f.value);
    for (char& c : name) c = AsciiLower(c);  // HTTP/2 field names are lowercase
    if (IsConnectionSpecific(name)) ex.answer.response.pop_back();
  }
  SpareChunk chunk;
  BodyDecoder body;
  body.Start(res.framing, res.content_length);
  // A short body is read whole before the answer goes out, as over HTTP/1.1 (kHoldBytes): one
  // that breaks off then reached nobody, and the attempt failed (503, or another try).
  // The try's deadline still holds while it is read: a body that stalls is a timeout (UT).
  if (res.framing == BodyFraming::kLength && res.content_length <= kHoldBytes) {
    if (try_until != std::chrono::steady_clock::time_point::max()) conn.Arm(try_until);
    while (!body.done() && !ex.down_closed()) {
      const std::span<char> room{reinterpret_cast<char*>(chunk.get()), kChunk};
      BodyRead r = TakeBufferedBody(buf, body, room);
      if (!r.error && r.n == 0 && !body.done()) r = co_await ReadBody(s, buf, body, room);
      if (r.error) {
        ex.response_body.Clear();
        co_return conn.Disarm() ? ResponseFlag::kUpstreamRequestTimeout : ResponseFlag::kUpstreamConnectionTermination;
      }
      ex.response_body.Append(chunk.get(), r.n);
    }
    conn.Disarm();
  }
  ex.response_end = body.done();
  if (ex.down_closed()) co_return ResponseFlag::kNone;
  SubmitResponse(ex);
  while (!body.done()) {
    if (ex.down_closed()) co_return ResponseFlag::kNone;
    if (ex.response_body.size() >= kHttp1ResponseBuffer) {
      co_await WaitFor(ex);
      continue;
    }
    const std::span<char> room{reinterpret_cast<char*>(chunk.get()), kChunk};
    BodyRead r = TakeBufferedBody(buf, body, room);
    if (!r.error && r.n == 0 && !body.done()) r = co_await ReadBody(s, buf, body, room);
    if (r.error) co_return ex.down_closed() ? ResponseFlag::kNone : ResponseFlag::kUpstreamProtocolError;
    ex.response_body.Append(chunk.get(), r.n);
    if (body.done()) ex.response_end = true;
    ResumeAnswer(ex);
  }
  ex.response_end = true;
  ResumeAnswer(ex);
  // False too when the body ended with the connection, or bytes follow the answer.
  keep = res.keep_alive && buf.size() == 0;
  co_return ResponseFlag::kNone;
}

Awaitable<ResponseFlag> H2Bridge::RunTunnel(H2Exchange& ex, Http1Conn& conn) {
  // RFC 8441: the client hears 200, with the upstream's WebSocket fields but its accept key
  // (the upstream's answer to a key the proxy made up) and the connection's own.
  ex.answer.response.clear();
  ex.answer.response.emplace_back(":status", "200");
  for (const auto& f : conn.answer_head.fields) {
    std::string name = AsciiLower(f.name);
    if (IsConnectionSpecific(name) || name == "sec-websocket-accept") continue;
    ex.answer.response.emplace_back(std::move(name), f.value);
  }
  ex.response_end = false;
  SubmitResponse(ex);
  ex.wake->expires_at(Timer::time_point::max());
  const auto idle_timeout = ex.attempts->cluster() ? ex.attempts->cluster()->limits.idle_timeout : std::chrono::hours(1);
  uint64_t moved = 0;  // bytes either way: the idle watch looks for progress
  bool broken = false;
  auto both = (TunnelToClient(ex, conn, moved, broken) && TunnelToUpstream(ex, conn, moved, broken));
  auto result = co_await (std::move(both) || IdleWatch([&moved] { return moved; }, idle_timeout, [&] {
                            broken = true;
                            boost::system::error_code ignored;
                            CloseSocket(conn.socket, ignored);
                            ex.Wake();
                          }));
  if (result.index() == 1) {  // idled out: the upstream connection is closed, the client's stream reset
    ex.entry.flags |= ResponseFlag::kStreamIdleTimeout;
    if (!ex.down_closed() && !ex.response_end) {
      nghttp2_submit_rst_stream(down_->session(), NGHTTP2_FLAG_NONE, ex.down_id, NGHTTP2_CANCEL);
      down_->Kick();
    }
    co_return ResponseFlag::kNone;
  }
  // The upstream reset the tunnel: the client's stream is reset too (UpstreamFailed).
  co_return broken && !ex.response_end ? ResponseFlag::kUpstreamConnectionTermination : ResponseFlag::kNone;
}

Awaitable<void> H2Bridge::TunnelToClient(H2Exchange& ex, Http1Conn& conn, uint64_t& moved, bool& broken) {
  SpareChunk chunk;
  for (;;) {
    if (ex.down_closed() || broken) co_return;
    if (ex.response_body.size() >= kHttp1ResponseBuffer) {  // the client reads slower than the upstream sends
      co_await WaitTunnel(ex);
      continue;
    }
    size_t n = 0;
    if (conn.buffer.size() > 0) {  // what came with the 101
      n = asio::buffer_copy(asio::buffer(chunk.get(), kChunk), conn.buffer.data());
      conn.buffer.consume(n);
    } else {
      auto [ec, got] = co_await conn.socket.async_read_some(asio::buffer(chunk.get(), kChunk), kNoThrow);
      if (ec) {
        // The upstream's end (its FIN) ends the client's stream: END_STREAM; a reset breaks it.
        if (ec == asio::error::eof) ex.response_end = true;
        else broken = true;
        ResumeAnswer(ex);
        ex.Wake();
        co_return;
      }
      n = got;
    }
    moved += n;
    ex.response_body.Append(chunk.get(), n);
    ResumeAnswer(ex);
  }
}

Awaitable<void> H2Bridge::TunnelToUpstream(H2Exchange& ex, Http1Conn& conn, uint64_t& moved, bool& broken) {
  SpareChunk chunk;
  for (;;) {
    if (broken) co_return;
    if (size_t n = ex.request_body.Take(chunk.get(), kChunk); n > 0) {
      auto [ec, wrote] = co_await asio::async_write(conn.socket, asio::buffer(chunk.get(), n), kNoThrow);
      if (ec) {
        broken = true;
        ex.Wake();
        co_return;
      }
      moved += n;
      Credit(ex, ex.Sent(chunk.get(), n));
      continue;
    }
    if (ex.request_end()) {  // the client's END_STREAM: a half-close toward the upstream
      boost::system::error_code ignored;
      conn.socket.shutdown(Socket::shutdown_send, ignored);
      co_return;
    }
    if (ex.down_closed()) co_return;
    co_await WaitTunnel(ex);
  }
}

Awaitable<void> H2Bridge::WaitTunnel(H2Exchange& ex) { co_await ex.wake->async_wait(kNoThrow); }

void H2Bridge::Requeue(H2Exchange& ex) {
  std::string rest(ex.request_body.size(), '\0');
  ex.request_body.Take(reinterpret_cast<uint8_t*>(rest.data()), rest.size());
  ex.request_body.Clear();
  ex.acknowledged_prefix += ex.kept.body.size();  // what of the last prefix was not resent stays credited
  ex.request_body.Append(ex.kept.body);
  ex.request_body.Append(rest);
  ex.kept.body.clear();
}

Awaitable<void> H2Bridge::WaitFor(H2Exchange& ex) {
  ex.wake->expires_at(Timer::time_point::max());
  co_await ex.wake->async_wait(kNoThrow);
}

}  // namespace tern::proxy
