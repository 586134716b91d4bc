// Keeps one SETTINGS ACK from nghttp2, so that a client opening more streams than
// SETTINGS_MAX_CONCURRENT_STREAMS gets a stream error, not a connection error.
//
// Why: RFC 9113 5.1.2 makes a HEADERS frame past the advertised limit a stream error
// (REFUSED_STREAM or PROTOCOL_ERROR), and the other streams of the connection live on. nghttp2
// refuses such a stream with REFUSED_STREAM only while the SETTINGS that announced the limit is
// unacknowledged; once the ACK arrives it ends the whole connection (GOAWAY PROTOCOL_ERROR).
// So the server sends the limit alone in a second SETTINGS frame, and the peer's ACK of that
// frame is taken out of the bytes nghttp2 reads: nghttp2 then enforces the limit the RFC's way
// for the connection's life. The first SETTINGS (windows, header list size) is acknowledged as
// usual, so every other setting applies.
//
// The filter reads frame boundaries only until it has dropped that ACK (the client sends it at
// once, in its first bytes); after that it is a plain pass-through.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

namespace tern::proxy {

class SettingsAckFilter {
 public:
  // Drops the `nth` SETTINGS ACK (1-based) of a stream that starts with the client preface when
  // `preface` (a server's input).
  SettingsAckFilter(int nth, bool preface) : drop_at_(nth), preface_left_(preface ? 24 : 0) {}

  // Passes `data` to `sink` in order, less the dropped frame, in one or more pieces; false when
  // a sink call failed (that failure ends the connection; the rest is not passed).
  bool Pass(const uint8_t* data, size_t size, const std::function<bool(const uint8_t*, size_t)>& sink);
  bool done() const { return done_; }

 private:
  int drop_at_;
  size_t preface_left_;
  size_t payload_left_ = 0;
  uint8_t header_[9];
  size_t header_have_ = 0;
  int acks_ = 0;
  bool done_ = false;
};

}  // namespace tern::proxy
