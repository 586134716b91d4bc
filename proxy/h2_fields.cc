#include "proxy/h2_fields.h"

#include <charconv>

#include <algorithm>
#include <cstdlib>

namespace tern::proxy {

void ApplyHeaderOps(Headers& h, const istio::HeaderOperations& ops) {
  auto erase = [&](const std::string& name) { std::erase_if(h, [&](const auto& f) { return f.first == name; }); };
  for (const auto& name : ops.remove) erase(AsciiLower(name));
  for (const auto& [name, value] : ops.set) {
    erase(AsciiLower(name));
    h.emplace_back(AsciiLower(name), value);
  }
  for (const auto& [name, value] : ops.add) h.emplace_back(AsciiLower(name), value);
}

NameValues::NameValues(const Headers& h) : size_(h.size()) {
  nghttp2_nv* out = inline_.data();
  if (size_ > kInline) {
    heap_.resize(size_);
    out = heap_.data();
  }
  for (const auto& [n, v] : h) {
    *out++ = {reinterpret_cast<uint8_t*>(const_cast<char*>(n.data())), reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())),
              n.size(), v.size(), NGHTTP2_NV_FLAG_NONE};
  }
}

bool AnswerHeaders::Add(std::string_view name, std::string_view value) {
  bytes_ += name.size() + value.size() + 32;
  // Counted here, not from the lists: the response's may be edited once it is submitted.
  if (bytes_ > kMaxHeaderBytes || fields_ >= kMaxHeaderFields) return false;
  if (name == ":status" && !value.empty() && value[0] == '1') interim_ = true;
  if (!interim_) {
    (final_ ? trailers : response).emplace_back(name, value);
    ++fields_;
  }
  return true;
}

AnswerHeaders::Block AnswerHeaders::End() {
  if (interim_) {
    interim_ = false;
    return Block::kInterim;
  }
  if (final_) return Block::kTrailers;
  final_ = true;
  return Block::kResponse;
}

unsigned AnswerHeaders::status() const {
  for (const auto& [n, v] : response) {
    if (n == ":status") return static_cast<unsigned>(std::atoi(v.c_str()));
  }
  return 0;
}

std::optional<int> AnswerHeaders::grpc_status() const {
  for (const auto& [n, v] : response) {
    if (n == "grpc-status") return std::atoi(v.c_str());
  }
  return std::nullopt;
}

std::optional<uint64_t> AnswerHeaders::content_length() const {
  for (const auto& [n, v] : response) {
    if (n != "content-length") continue;
    uint64_t length = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), length);
    if (ec != std::errc() || end != v.data() + v.size()) return std::nullopt;
    return length;
  }
  return std::nullopt;
}

bool IsGrpcRequest(const Headers& request) {
  for (const auto& [n, v] : request) {
    if (n != "content-type") continue;
    std::string_view type = v;
    return type.substr(0, 16) == "application/grpc" && (type.size() == 16 || type[16] == '+' || type[16] == ';');
  }
  return false;
}

int GrpcStatusForHttp(unsigned http_status) {
  switch (http_status) {
    case 400: return 13;  // INTERNAL
    case 401: return 16;  // UNAUTHENTICATED
    case 403: return 7;   // PERMISSION_DENIED
    case 404: return 12;  // UNIMPLEMENTED
    case 429:
    case 502:
    case 503:
    case 504: return 14;  // UNAVAILABLE
    default: return 2;    // UNKNOWN
  }
}

bool IsConnectionSpecific(std::string_view n) {
  return n == "connection" || n == "keep-alive" || n == "proxy-connection" || n == "transfer-encoding" || n == "upgrade";
}

}  // namespace tern::proxy
