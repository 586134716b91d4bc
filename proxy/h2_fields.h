// What the HTTP/2 paths share: header lists as nghttp2 takes them, the byte queue between a
// stream's two sides, Istio header operations on a header list, and the fields HTTP/2 forbids
// (connection-specific) that an HTTP/1.1 side must drop when it crosses over.
#pragma once

#include <nghttp2/nghttp2.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/base/ascii.h"
#include "core/istio/virtual_service.h"
#include "proxy/header_limits.h"

namespace tern::proxy {

// Names lowercase, pseudo-headers first.
using Headers = std::vector<std::pair<std::string, std::string>>;

// Bytes received on one side, waiting for the other side's writer.
class ByteQueue {
 public:
  size_t size() const { return data_.size() - off_; }
  void Append(const uint8_t* p, size_t n) { Append(std::string_view(reinterpret_cast<const char*>(p), n)); }
  void Append(std::string_view s) {
    // The taken prefix is dropped once it outweighs what is left: a queue that never drains
    // whole (a reader slightly slower than the writer) stays bounded by what it holds.
    if (off_ > 0 && off_ >= size()) {
      data_.erase(0, off_);
      off_ = 0;
    }
    data_ += s;
  }
  // Bytes held, taken ones included (what the queue costs).
  size_t footprint() const { return data_.size(); }
  // Room it has, used or not.
  size_t capacity() const { return data_.capacity(); }
  // Drops everything; how many bytes that was.
  size_t Clear() {
    size_t n = size();
    data_.clear();
    off_ = 0;
    return n;
  }
  size_t Take(uint8_t* out, size_t max) {
    size_t n = std::min(max, size());
    std::memcpy(out, data_.data() + off_, n);
    off_ += n;
    if (off_ == data_.size()) {
      data_.clear();
      off_ = 0;
    }
    return n;
  }

 private:
  std::string data_;
  size_t off_ = 0;
};

// An upstream's answer as nghttp2 delivers its header blocks: a 1xx block is dropped, the first
// final block is the response, a later one the trailers; bounded like a request's header.
class AnswerHeaders {
 public:
  enum class Block { kInterim, kResponse, kTrailers };
  // One field of the current block; false past the bounds (the stream is to be reset).
  bool Add(std::string_view name, std::string_view value);
  // The current block is complete: which it was.
  Block End();
  bool has_response() const { return final_; }
  // The response's :status (0 before it).
  unsigned status() const;
  // The response headers' grpc-status (a trailers-only gRPC answer), if any.
  std::optional<int> grpc_status() const;
  // The response's content-length, if it has a valid one.
  std::optional<uint64_t> content_length() const;

  Headers response, trailers;

 private:
  bool interim_ = false, final_ = false;
  size_t bytes_ = 0;
  size_t fields_ = 0;  // of the response and its trailers
};

// Istio's remove, set, add, with names compared lowercase.
void ApplyHeaderOps(Headers& h, const istio::HeaderOperations& ops);
// Views into a header list (which must outlive them) as nghttp2 takes them: held in place for
// up to kInline fields, so submitting most header blocks allocates nothing here.
class NameValues {
 public:
  explicit NameValues(const Headers& h);
  NameValues(const NameValues&) = delete;
  NameValues& operator=(const NameValues&) = delete;
  const nghttp2_nv* data() const { return heap_.empty() ? inline_.data() : heap_.data(); }
  size_t size() const { return size_; }

 private:
  static constexpr size_t kInline = 24;
  std::array<nghttp2_nv, kInline> inline_;
  std::vector<nghttp2_nv> heap_;
  size_t size_ = 0;
};
// connection, keep-alive, proxy-connection, transfer-encoding, upgrade (lowercase name).
bool IsConnectionSpecific(std::string_view lowercase_name);
// A request field that ends at the proxy: the connection-specific ones and te.
inline bool IsHopByHop(std::string_view lowercase_name) {
  return lowercase_name == "te" || IsConnectionSpecific(lowercase_name);
}

// A gRPC call: content-type application/grpc, alone or with a suffix (+proto, +json, ;...).
bool IsGrpcRequest(const Headers& request);
// The gRPC status a gRPC library reads from an answer with HTTP status `http_status` and no
// grpc-status (gRPC's doc/http-grpc-status-mapping.md): what the proxy's own answers to a gRPC
// call carry, as Envoy's do.
int GrpcStatusForHttp(unsigned http_status);

}  // namespace tern::proxy
