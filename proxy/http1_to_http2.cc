// An HTTP/1.1 client's request forwarded as a stream on a pooled HTTP/2 upstream connection (a
// port declared http2/grpc, or h2UpgradePolicy UPGRADE toward a sidecar), its answer written
// back as HTTP/1.1; the request's AttemptLoop says what follows each try.
#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <memory>

#include "core/base/ascii.h"
#include "proxy/h2_fields.h"
#include "proxy/h2_upstream_pool.h"
#include "proxy/http1_forward.h"
#include "proxy/mirror.h"

namespace tern::proxy {

namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;

namespace {

constexpr size_t kH2RequestBuffer = 256 * 1024;  // read no further ahead of the upstream

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

}  // namespace

// One HTTP/1.1 request forwarded as an HTTP/2 stream, its answer written back as HTTP/1.1. The
// request's fields cross over lowercase without the connection-specific ones; the answer's
// trailers are dropped (an HTTP/1.1 client did not ask for them). A stream that fails before
// its answer (or answers a status the route retries on) is tried again as the attempt loop
// says (the body kept up to kMaxMirroredBody). An answer that breaks off after its header ends
// the client connection: never a truncated answer presented as whole.
Awaitable<ForwardOutcome> ForwardToHttp2(ForwardRequest& x, H2UpstreamPool& pool) {
  using Clock = std::chrono::steady_clock;
  Http1Head& req = x.req;
  AttemptLoop& loop = x.attempts;
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
  kept.keep = loop.may_retry();
  ForwardOutcome out;
  auto uchunk = reinterpret_cast<const uint8_t*>(x.chunk.data());
  std::unique_ptr<BufferedH2Stream> s;
  // Lets go of the stream: reset when still open.
  auto release = [&] { pool.Release(*s); };
  bool first = true;
  for (int round = 0; round < loop.max_attempts(); ++round) {
    x.entry.upstream = loop.to();
    loop.Begin();
    s = std::make_unique<BufferedH2Stream>(x.ex);
    const ResponseFlag refused =
        pool.Open(*s, loop.to(), loop.cluster(), x.ctx.inbound, x.ctx.connect_timeout, h, has_body);
    if (refused != ResponseFlag::kNone) {
      loop.After({.failure = refused}, out.flags);
      co_return Failed(out, refused);
    }
    if (std::exchange(first, false)) {  // the first try reads the body from the client as it goes
      while (!x.body.done() && !s->over()) {
        if (s->request_body.size() >= kH2RequestBuffer) {
          co_await s->Wait();
          continue;
        }
        BodyRead r = co_await ReadBody(x.down, x.dbuf, x.body, x.chunk);
        if (r.error) {
          release();
          out.local_status = 400;
          out.local_body = std::string(r.error.problem ? r.error.problem : r.error.ec.message()) + "\n";
          out.body_error = true;
          co_return out;
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
    loop.RequestComplete();
    // The route's timeout holds from now; the try's own once its connection is up (OnConnected).
    auto try_until = loop.give_up();
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
        try_until = loop.TryDeadline();
        deadline.expires_at(try_until);
      }
      co_await (s->Wait() || deadline.async_wait(kNoThrowAwaitable));
    }
    AttemptResult result;
    if (answered()) {
      result.status = s->answer.status();
      result.grpc_status = s->answer.grpc_status();
    } else {
      result.failure = !s->over()          ? ResponseFlag::kUpstreamRequestTimeout
                       : s->connect_failed ? ResponseFlag::kUpstreamConnectionFailure
                       : s->protocol_error ? ResponseFlag::kUpstreamProtocolError
                                           : ResponseFlag::kUpstreamConnectionTermination;
      result.refused_stream = s->closed_code == NGHTTP2_REFUSED_STREAM;  // never processed
    }
    result.replayable = !body_unread && !kept.overflow;
    const NextStep next = loop.After(result, out.flags);
    if (next == NextStep::kRetry) {
      release();  // its answer, if any, is dropped
      co_await NextTry(x);
      continue;
    }
    if (next != NextStep::kDeliver) {
      release();
      co_return Failed(out, result.failure);
    }
    loop.Answered(result.status);
    break;
  }
  Http1Head& res = x.answer;
  res.StartResponse(s->answer.status());
  for (const auto& [n, v] : s->answer.response) {
    if (n[0] != ':') res.Add(n, v);
  }
  ApplyResponseOps(res, x.d);
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
  x.entry.code = res.status;
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
        out.flags |= ResponseFlag::kUpstreamProtocolError;
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
      out.flags |= ResponseFlag::kDownstreamConnectionTermination;  // the client went away
      out.close = true;
      break;
    }
    if (last) break;
  }
  release();  // done with it (no reset when the stream is over)
  co_return out;
}
}  // namespace tern::proxy
