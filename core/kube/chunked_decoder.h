// An incremental decoder of HTTP/1.1's chunked transfer coding (RFC 9112 §7.1), for a body read
// as it arrives: a Kubernetes watch is one chunked response that lasts minutes, its events cut
// across chunks and reads at any byte. Chunk extensions are skipped; trailers are read and
// dropped. Malformed framing is an error naming what was wrong, and the decoder stays failed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/base/status.h"

namespace tern::kube {

class ChunkedDecoder {
 public:
  // A chunk size line longer than this is malformed (no sane server sends one).
  static constexpr size_t kMaxSizeLine = 1024;

  // Decodes `in`, appending the body's bytes to `out`. Bytes after the last chunk's trailers
  // are not consumed (done() then holds).
  Status Feed(std::string_view in, std::string& out);
  // The last chunk and its trailers were read: the body is whole.
  bool done() const { return state_ == State::kDone; }

 private:
  enum class State : uint8_t { kSize, kData, kDataEnd, kTrailers, kDone, kFailed };
  Status Fail(std::string why);

  State state_ = State::kSize;
  std::string line_;    // the size line (or trailer line) read so far
  uint64_t left_ = 0;   // bytes of the current chunk still to come
};

}  // namespace tern::kube
