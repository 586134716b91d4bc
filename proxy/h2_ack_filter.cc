#include "proxy/h2_ack_filter.h"

#include <algorithm>

namespace tern::proxy {

namespace {
constexpr uint8_t kSettings = 0x4;
constexpr uint8_t kAck = 0x1;
}  // namespace

bool SettingsAckFilter::Pass(const uint8_t* data, size_t size, const std::function<bool(const uint8_t*, size_t)>& sink) {
  if (done_) return size == 0 || sink(data, size);
  size_t at = 0, run = 0;  // bytes [at - run, at) pass through as they are
  auto flush = [&] {
    bool ok = run == 0 || sink(data + at - run, run);
    run = 0;
    return ok;
  };
  while (at < size && !done_) {
    if (preface_left_ > 0 || payload_left_ > 0) {
      size_t& left = preface_left_ > 0 ? preface_left_ : payload_left_;
      size_t n = std::min(left, size - at);
      left -= n, at += n, run += n;
      continue;
    }
    // A frame header: held here until whole, then passed on unless it is the ACK to drop.
    if (!flush()) return false;
    size_t n = std::min(sizeof header_ - header_have_, size - at);
    std::copy_n(data + at, n, header_ + header_have_);
    header_have_ += n, at += n;
    if (header_have_ < sizeof header_) break;
    header_have_ = 0;
    payload_left_ = size_t{header_[0]} << 16 | size_t{header_[1]} << 8 | header_[2];
    const bool ack = header_[3] == kSettings && (header_[4] & kAck) && payload_left_ == 0;
    if (ack && ++acks_ == drop_at_) {
      done_ = true;
      continue;
    }
    if (!sink(header_, sizeof header_)) return false;
  }
  run += size - at;  // once done, the rest passes at once
  at = size;
  return flush();
}

}  // namespace tern::proxy
