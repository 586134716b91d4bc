// One HTTP/2 connection, either side: an nghttp2 session over an Asio socket, read and written
// by two coroutines on the connection's worker. nghttp2 does the framing, HPACK, the stream
// state machine and the protocol's own validation; the H2Handler (the session that bridges
// streams) gets its callbacks. Flow control is manual (no automatic WINDOW_UPDATE): the handler
// calls nghttp2_session_consume only once the bytes it received have been passed on, so a slow
// reader on one side holds back the writer on the other and buffers stay bounded by the windows.
#pragma once

#include <nghttp2/nghttp2.h>

#include <array>
#include <optional>
#include <string>
#include <string_view>

#include "proxy/asio_types.h"
#include "proxy/h2_ack_filter.h"

namespace tern::proxy {

class H2Connection;

// Return 0, or an nghttp2 error code (NGHTTP2_ERR_CALLBACK_FAILURE ends the connection).
class H2Handler {
 public:
  virtual ~H2Handler() = default;
  virtual int OnBeginFrame(H2Connection& c, const nghttp2_frame_hd& hd) = 0;
  virtual int OnBeginHeaders(H2Connection& c, const nghttp2_frame& frame) = 0;
  virtual int OnHeader(H2Connection& c, const nghttp2_frame& frame, std::string_view name, std::string_view value) = 0;
  virtual int OnFrameRecv(H2Connection& c, const nghttp2_frame& frame) = 0;
  virtual int OnData(H2Connection& c, int32_t stream, const uint8_t* data, size_t size) = 0;
  virtual int OnStreamClose(H2Connection& c, int32_t stream, uint32_t error_code) = 0;
};

class H2Connection {
 public:
  enum class Role { kServer, kClient };
  // Stream receive window per stream, and for the connection; they bound what a peer can make
  // the proxy hold for one stream and for all of them.
  static constexpr int32_t kStreamWindow = 256 * 1024;
  static constexpr int32_t kConnectionWindow = 1024 * 1024;
  static constexpr uint32_t kMaxConcurrentStreams = 100;

  H2Connection(Socket socket, Role role, H2Handler& handler);
  ~H2Connection();
  H2Connection(const H2Connection&) = delete;
  H2Connection& operator=(const H2Connection&) = delete;

  nghttp2_session* session() const { return session_; }
  H2Handler& handler() { return handler_; }
  Socket& socket() { return socket_; }
  // Feeds `initial` (bytes a sniffer already read), then reads and writes until the session is
  // over (both sides done, GOAWAY sent and flushed) or the socket fails. When this side ended
  // it, the close lingers (see Linger).
  Awaitable<void> Run(std::string initial);
  // Something was submitted or resumed: the writer flushes it.
  void Kick();
  // Ends Run at once (the socket is closed).
  void Close();
  bool closed() const { return closed_; }
  // The peer broke the protocol: nghttp2 refused what it read, or the session was ended with
  // an error code (GOAWAY) for what the peer did.
  bool protocol_error() const { return protocol_error_; }
  // nghttp2 sent a GOAWAY with `error_code`, or reported an error (its callbacks).
  void GoawaySent(uint32_t error_code);
  void LibraryError(int lib_error_code);

 private:
  Awaitable<void> ReadLoop();
  Awaitable<void> WriteLoop();
  // This side ended the session with the peer still sending: the write side is shut (the peer
  // reads our GOAWAY, then EOF) and what still arrives is read and dropped, up to kLingerTime
  // and kLingerBytes. Closing at once with unread bytes queued would reset the connection, and
  // a reset can destroy the GOAWAY before the peer reads it (RFC 9113 6.8: a graceful close).
  Awaitable<void> Linger();
  Awaitable<void> DrainInput();
  bool Feed(const uint8_t* data, size_t size);

  Socket socket_;
  const Role role_;
  H2Handler& handler_;
  nghttp2_session* session_ = nullptr;
  Timer wake_;
  std::array<uint8_t, 16384> in_;
  std::string out_;
  bool closed_ = false;
  bool peer_done_ = false;  // the peer closed or reset its side
  bool protocol_error_ = false;
  // A server's input: the ACK of its stream-limit SETTINGS is kept from nghttp2 (see
  // h2_ack_filter.h). None for a client's.
  std::optional<SettingsAckFilter> ack_filter_;
};

}  // namespace tern::proxy
