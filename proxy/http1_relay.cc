#include "proxy/http1_relay.h"

#include <algorithm>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/error.hpp>
#include <cstring>
#include <tuple>

#include "proxy/batched_send.h"
#include "proxy/draining_read.h"

namespace tern::proxy {

namespace asio = boost::asio;
using error_code = boost::system::error_code;

namespace {

constexpr size_t kPieces = RelayScratch::kPieces;  // body pieces gathered into one write

// A read in the middle of a message: at once (ReadNow), else on the next edge.
Awaitable<std::tuple<error_code, size_t>> ReadMore(Socket& s, asio::mutable_buffer room) {
  error_code ec;
  size_t n = 0;
  if (ReadNow(s, room, ec, n)) co_return std::tuple{ec, n};
  co_return co_await s.async_read_some(DrainingBuffer(room), kNoThrow);
}

std::string_view Buffered(const boost::beast::flat_buffer& buf) {
  return {static_cast<const char*>(buf.data().data()), buf.size()};
}

}  // namespace

void Tee::Add(std::string_view data) {
  if (!keep) overflow = overflow || !data.empty();
  if (overflow) return;
  if (body.size() + data.size() > limit) {
    overflow = true;
    body.clear();
    return;
  }
  body.append(data);
}

Awaitable<error_code> ReadRawHeader(Socket& s, boost::beast::flat_buffer& buf, size_t limit, size_t& length, size_t first_read) {
  size_t searched = 0;  // the blank line is not in what was searched before (less its last 3 bytes)
  size_t lf_checked = 0;  // bytes already checked for a bare LF
  for (;;) {
    // Empty lines before a start line are skipped (RFC 9112 2.2), not read as a header's end.
    while (searched == 0 && buf.size() >= 2 && Buffered(buf).starts_with("\r\n")) buf.consume(2);
    std::string_view data = Buffered(buf);
    size_t end = data.find("\r\n\r\n", searched);
    if (end != std::string_view::npos && end + 4 <= limit) {
      length = end + 4;
      co_return error_code{};
    }
    // A line ended by a bare LF: a head written so never ends in CRLFCRLF, so it is refused as
    // soon as it is seen, not left to run into the header timeout (a whole head with a bare LF
    // in it is the parser's to refuse).
    for (size_t lf = data.find('\n', lf_checked); lf != std::string_view::npos; lf = data.find('\n', lf + 1)) {
      if (lf == 0 || data[lf - 1] != '\r') co_return boost::beast::http::error::bad_line_ending;
    }
    lf_checked = data.size();
    if (data.size() >= limit) co_return boost::beast::http::error::header_limit;
    searched = data.size() > 3 ? data.size() - 3 : 0;
    // The next message is awaited on the edge; the rest of one begun is read at once (ReadNow).
    auto room = buf.prepare(data.empty() ? first_read : kReadSize);
    error_code ec;
    size_t n = 0;
    if (data.empty() || !ReadNow(s, room, ec, n)) std::tie(ec, n) = co_await s.async_read_some(DrainingBuffer(room), kNoThrow);
    if (ec) co_return ec;
    buf.commit(n);
  }
}

namespace {
// `buffers` less its first `n` bytes: the span shrinks and its first buffer is trimmed in place.
std::span<asio::const_buffer> Rest(std::span<asio::const_buffer> buffers, size_t n) {
  while (!buffers.empty() && n >= buffers.front().size()) {
    n -= buffers.front().size();
    buffers = buffers.subspan(1);
  }
  if (!buffers.empty()) buffers.front() += n;
  return buffers;
}
}  // namespace

Awaitable<error_code> WriteGather(Socket& s, std::span<asio::const_buffer> buffers) {
  size_t total = asio::buffer_size(buffers);
  auto [ec, n] = co_await BatchedSends::Of(s).Send(s, buffers);
  if (ec || n == total) co_return ec;
  auto [wec, w] = co_await asio::async_write(s, Rest(buffers, n), kNoThrow);
  co_return wec;
}

Awaitable<RelayError> RelayMessage(Socket& in, boost::beast::flat_buffer& buf, BodyDecoder& body, std::string_view head,
                                   Socket& out, bool chunk_out, RelayScratch& scratch, Tee* tee) {
  auto& gather = scratch.gather;
  auto& sizes = scratch.sizes;
  bool wrote = false;
  const bool hold = body.framing() == BodyFraming::kLength && body.remaining() <= kHoldBytes;
  for (;;) {
    if (hold && !wrote && buf.size() < body.remaining()) {
      auto [ec, got] = co_await ReadMore(in, buf.prepare(kReadSize));
      if (ec) co_return RelayError{.ec = ec, .reading = true};
      buf.commit(got);
      continue;
    }
    size_t n = 0, used = 0, pieces = 0;
    if (!wrote && !head.empty()) gather[n++] = asio::buffer(head);
    std::string_view in_bytes = Buffered(buf);
    while (!body.done() && pieces < kPieces && used < in_bytes.size()) {
      size_t step;
      std::string_view data;
      if (const char* problem = body.Next(in_bytes.substr(used), step, data)) {
        co_return RelayError{.problem = problem, .reading = true, .wrote = wrote};
      }
      used += step;
      if (data.empty()) continue;
      if (tee) tee->Add(data);
      if (chunk_out) {
        gather[n++] = asio::buffer(sizes[pieces], ChunkHeader(data.size(), sizes[pieces]));
        gather[n++] = asio::buffer(data);
        gather[n++] = asio::buffer(kCrlf);
      } else {
        gather[n++] = asio::buffer(data);
      }
      ++pieces;
    }
    if (body.done() && chunk_out) gather[n++] = asio::buffer(kLastChunk);
    if (n > 0) {
      // Sent with the rest of this turn's writes (one system call for all: batched_send.h), or
      // at once without io_uring; what the socket did not take, asynchronously.
      error_code ec;
      std::span<asio::const_buffer> pending(gather.data(), n);
      if (!scratch.sends) scratch.sends = &BatchedSends::Of(out);
      size_t now;
      std::tie(ec, now) = co_await scratch.sends->Send(out, pending);
      if (!ec && now < asio::buffer_size(pending)) {
        std::tie(ec, std::ignore) = co_await asio::async_write(out, Rest(pending, now), kNoThrow);
      }
      if (ec) co_return RelayError{.ec = ec, .wrote = true};
      wrote = true;
    }
    buf.consume(used);
    if (body.done()) co_return RelayError{.wrote = wrote};
    if (used < in_bytes.size()) continue;  // more is buffered than one write took
    auto [ec, got] = co_await ReadMore(in, buf.prepare(kReadSize));
    if (ec == asio::error::eof) {
      body.EndOfInput();
      if (body.done()) {  // a body framed by the connection's end
        if (chunk_out) {
          gather[0] = asio::buffer(kLastChunk);
          if (error_code wec = co_await WriteGather(out, {gather.data(), 1})) co_return RelayError{.ec = wec, .wrote = true};
        }
        co_return RelayError{.wrote = true};
      }
    }
    if (ec) co_return RelayError{.ec = ec, .reading = true, .wrote = wrote};
    buf.commit(got);
  }
}

BodyRead TakeBufferedBody(boost::beast::flat_buffer& buf, BodyDecoder& body, std::span<char> out) {
  BodyRead r;
  std::string_view in_bytes = Buffered(buf);
  size_t used = 0;
  while (!body.done() && used < in_bytes.size() && r.n < out.size()) {
    size_t step;
    std::string_view data;
    // At most what `out` has room for: the decoder takes no more than it is given.
    if (const char* problem = body.Next(in_bytes.substr(used, out.size() - r.n), step, data)) {
      r.error = RelayError{.problem = problem, .reading = true};
      return r;
    }
    if (step == 0) break;
    used += step;
    std::memcpy(out.data() + r.n, data.data(), data.size());
    r.n += data.size();
  }
  buf.consume(used);
  return r;
}

Awaitable<BodyRead> ReadBody(Socket& in, boost::beast::flat_buffer& buf, BodyDecoder& body, std::span<char> out) {
  for (;;) {
    BodyRead r = TakeBufferedBody(buf, body, out);
    if (r.error || body.done() || r.n > 0) co_return r;
    auto [ec, got] = co_await ReadMore(in, buf.prepare(kReadSize));
    if (ec == asio::error::eof) {
      body.EndOfInput();
      if (body.done()) co_return r;
    }
    if (ec) {
      r.error = RelayError{.ec = ec, .reading = true};
      co_return r;
    }
    buf.commit(got);
  }
}

Awaitable<error_code> WriteAll(Socket& s, std::string_view bytes) {
  asio::const_buffer b = asio::buffer(bytes);
  co_return co_await WriteGather(s, {&b, 1});
}

}  // namespace tern::proxy
