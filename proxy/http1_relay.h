// Moving HTTP/1.1 messages between sockets with the proxy's own codec (http1_codec.h): a header
// section read whole before it is parsed, and a body relayed as it arrives, each batch of it one
// gather write (the head with the first bytes of the body, so a small message costs one write).
// Writes go to the socket directly before any asynchronous remainder: no other write may be
// under way on the same socket meanwhile (each socket here has one writing coroutine).
#pragma once

#include <array>
#include <boost/asio/buffer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/system/error_code.hpp>
#include <span>
#include <string>
#include <string_view>

#include "proxy/asio_types.h"
#include "proxy/http1_codec.h"

namespace tern::proxy {

class BatchedSends;

// A body of at most this length (by Content-Length) is read whole before anything of its message
// is written: a small message costs one write, and one that breaks off mid-body has reached
// nobody (a failed attempt: 503 or a retry, never a truncated answer).
inline constexpr uint64_t kHoldBytes = 16384;

struct RelayError {
  boost::system::error_code ec;  // of a read or a write
  const char* problem = nullptr; // the body's framing was malformed
  bool reading = false;          // the error came from the side being read (a malformed body, a reset)
  bool wrote = false;            // some of the message had been written before it
  explicit operator bool() const { return ec || problem; }
};

// A copy of a request body kept for its mirror or a retry, up to `limit` bytes; `overflow` once
// bytes went by that are not in it.
struct Tee {
  std::string body;
  size_t limit = 0;
  bool keep = true;  // false: nothing needs a copy
  bool overflow = false;
  void Add(std::string_view data);
};

// Reads until `buf` holds a whole header section (CRLF CRLF) within `limit` bytes; its length
// (the blank line included) in `length`. Errors: the read's, or http::error::header_limit.
// `first_read`: the room the first read waits with when `buf` is empty (a connection waiting for
// a client's next request holds no more than that while it waits).
inline constexpr size_t kReadSize = 16384;  // what one read asks for
Awaitable<boost::system::error_code> ReadRawHeader(Socket& s, boost::beast::flat_buffer& buf, size_t limit, size_t& length,
                                                   size_t first_read = kReadSize);

// What one relay gathers into a write: the head, and per body piece its chunk size line, the
// piece and its CRLF. Kept by the caller (one per connection) so that the relay's coroutine
// frame stays small enough for Asio to recycle (past about 1 KB it is allocated every time).
struct RelayScratch {
  static constexpr size_t kPieces = 8;
  std::array<boost::asio::const_buffer, 2 + 3 * kPieces> gather;
  char sizes[kPieces][20];
  BatchedSends* sends = nullptr;  // the worker's, found on the first write
};

// Writes `head` (already serialized; may be empty), then the body `body` decodes from `in`
// (what `buf` already holds first), written as it is or, with `chunk_out`, as chunks. Stops at
// the body's end: what follows it stays in `buf`.
Awaitable<RelayError> RelayMessage(Socket& in, boost::beast::flat_buffer& buf, BodyDecoder& body, std::string_view head,
                                   Socket& out, bool chunk_out, RelayScratch& scratch, Tee* tee = nullptr);

// Up to `out.size()` bytes of the body `body` decodes from `in` (what `buf` holds first): how
// many were copied (0 once the body is done), or an error.
struct BodyRead {
  size_t n = 0;
  RelayError error;
};
Awaitable<BodyRead> ReadBody(Socket& in, boost::beast::flat_buffer& buf, BodyDecoder& body, std::span<char> out);
// ReadBody's first step: what `buf` already holds, decoded, without reading from the socket (and
// without a coroutine frame: most answers arrive whole with their head).
BodyRead TakeBufferedBody(boost::beast::flat_buffer& buf, BodyDecoder& body, std::span<char> out);

// Writes `bytes` whole.
Awaitable<boost::system::error_code> WriteAll(Socket& s, std::string_view bytes);
// Writes `buffers` whole: what the socket takes with this turn's batch of writes
// (batched_send.h), then the rest asynchronously. The buffers must stay until it returns.
Awaitable<boost::system::error_code> WriteGather(Socket& s, std::span<boost::asio::const_buffer> buffers);


}  // namespace tern::proxy
