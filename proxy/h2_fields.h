// What the HTTP/2 paths share: header lists as nghttp2 takes them, the byte queue between a
// stream's two sides, Istio header operations on a header list, and the fields HTTP/2 forbids
// (connection-specific) that an HTTP/1.1 side must drop when it crosses over.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/istio/virtual_service.h"

namespace tern::proxy {

// Names lowercase, pseudo-headers first.
using Headers = std::vector<std::pair<std::string, std::string>>;

// Bytes received on one side, waiting for the other side's writer.
class ByteQueue {
 public:
  size_t size() const { return data_.size() - off_; }
  void Append(const uint8_t* p, size_t n) { data_.append(reinterpret_cast<const char*>(p), n); }
  void Append(std::string_view s) { data_ += s; }
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

std::string Lower(std::string_view s);
// Istio's remove, set, add, with names compared lowercase.
void ApplyHeaderOps(Headers& h, const istio::HeaderOperations& ops);
// Views into `h` (which must outlive the result).
std::vector<nghttp2_nv> NameValues(const Headers& h);
// connection, keep-alive, proxy-connection, transfer-encoding, upgrade (lowercase name).
bool IsConnectionSpecific(std::string_view lowercase_name);

}  // namespace tern::proxy
