#include "proxy/h2_connection.h"

#include <array>
#include <boost/asio.hpp>
#include <tuple>
#include <boost/asio/experimental/awaitable_operators.hpp>

#include "proxy/batched_send.h"
#include "proxy/draining_read.h"
#include "proxy/header_limits.h"
#include "proxy/http1_relay.h"

namespace tern::proxy {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;

namespace {

constexpr size_t kWriteBatch = 64 * 1024;

H2Connection& Conn(void* user_data) { return *static_cast<H2Connection*>(user_data); }
H2Handler& HandlerOf(void* user_data) { return Conn(user_data).handler(); }

// nghttp2's callbacks, made once: they reach the handler through the connection.
struct Callbacks {
  nghttp2_session_callbacks* cbs = nullptr;
  Callbacks() {
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_begin_frame_callback(
        cbs, [](nghttp2_session*, const nghttp2_frame_hd* hd, void* u) { return HandlerOf(u).OnBeginFrame(Conn(u), *hd); });
    nghttp2_session_callbacks_set_on_begin_headers_callback(
        cbs, [](nghttp2_session*, const nghttp2_frame* f, void* u) { return HandlerOf(u).OnBeginHeaders(Conn(u), *f); });
    nghttp2_session_callbacks_set_on_header_callback(
        cbs, [](nghttp2_session*, const nghttp2_frame* f, const uint8_t* name, size_t namelen, const uint8_t* value,
                size_t valuelen, uint8_t, void* u) {
          return HandlerOf(u).OnHeader(Conn(u), *f, {reinterpret_cast<const char*>(name), namelen},
                                       {reinterpret_cast<const char*>(value), valuelen});
        });
    nghttp2_session_callbacks_set_on_frame_recv_callback(
        cbs, [](nghttp2_session*, const nghttp2_frame* f, void* u) { return HandlerOf(u).OnFrameRecv(Conn(u), *f); });
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
        cbs, [](nghttp2_session*, uint8_t, int32_t stream, const uint8_t* data, size_t len, void* u) {
          return HandlerOf(u).OnData(Conn(u), stream, data, len);
        });
    nghttp2_session_callbacks_set_error_callback2(cbs, [](nghttp2_session*, int lib_error_code, const char*, size_t, void* u) {
      Conn(u).LibraryError(lib_error_code);
      return 0;
    });
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, [](nghttp2_session*, const nghttp2_frame* f, void* u) {
      if (f->hd.type == NGHTTP2_GOAWAY) Conn(u).GoawaySent(f->goaway.error_code);
      return 0;
    });
    nghttp2_session_callbacks_set_on_stream_close_callback(
        cbs, [](nghttp2_session*, int32_t stream, uint32_t code, void* u) { return HandlerOf(u).OnStreamClose(Conn(u), stream, code); });
  }
  ~Callbacks() { nghttp2_session_callbacks_del(cbs); }
};

struct Options {
  nghttp2_option* opt = nullptr;
  Options() {
    nghttp2_option_new(&opt);
    nghttp2_option_set_no_auto_window_update(opt, 1);
  }
  ~Options() { nghttp2_option_del(opt); }
};

}  // namespace

H2Connection::H2Connection(Socket socket, Role role, H2Handler& handler)
    : socket_(std::move(socket)), role_(role), handler_(handler), wake_(socket_.get_executor()) {
  static const Callbacks callbacks;
  static const Options options;
  if (role == Role::kServer) nghttp2_session_server_new2(&session_, callbacks.cbs, this, options.opt);
  else nghttp2_session_client_new2(&session_, callbacks.cbs, this, options.opt);
  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(kStreamWindow)},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, kMaxHeaderBytes},
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, kMaxConcurrentStreams},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
  };
  if (role == Role::kServer) {
    // The stream limit in a SETTINGS frame of its own, whose ACK nghttp2 never sees: a stream
    // past it is then refused alone (h2_ack_filter.h). A server must not send ENABLE_PUSH; it
    // takes WebSockets over HTTP/2 (RFC 8441's extended CONNECT).
    const nghttp2_settings_entry first[] = {settings[0], settings[1], {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1}};
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, first, 3);
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, &settings[2], 1);
    ack_filter_.emplace(/*nth=*/2, /*preface=*/true);
  } else {
    // A client announces it takes no pushes.
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, 4);
  }
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);
}

H2Connection::~H2Connection() { nghttp2_session_del(session_); }

void H2Connection::Kick() { wake_.cancel(); }

void H2Connection::LibraryError(int lib_error_code) {
  // The errors nghttp2 always ends the whole session for: bytes that are no HTTP/2 (a first
  // frame that is not SETTINGS, a frame longer than allowed), a broken header compression or
  // flow control. (NGHTTP2_ERR_PROTO also names one stream's error, which ends nothing else: a
  // connection it ends is marked by its GOAWAY, GoawaySent.) Noted as nghttp2 reads, since a peer
  // that sends garbage and closes may never receive that GOAWAY.
  switch (lib_error_code) {
    case NGHTTP2_ERR_SETTINGS_EXPECTED:
    case NGHTTP2_ERR_BAD_CLIENT_MAGIC:
    case NGHTTP2_ERR_FRAME_SIZE_ERROR:
    case NGHTTP2_ERR_HEADER_COMP:
    case NGHTTP2_ERR_FLOW_CONTROL: protocol_error_ = true; break;
    default: break;
  }
}

void H2Connection::GoawaySent(uint32_t error_code) {
  // nghttp2 ends a session with an error code when the peer broke the protocol (a frame too
  // long, a bad SETTINGS, garbage for a preface), as the handlers do for abuse.
  if (error_code != NGHTTP2_NO_ERROR) protocol_error_ = true;
}

void H2Connection::Close() {
  closed_ = true;
  boost::system::error_code ignored;
  socket_.shutdown(Socket::shutdown_both, ignored);
  CloseSocket(socket_, ignored);
  wake_.cancel();
}

bool H2Connection::Feed(const uint8_t* data, size_t size) {
  auto recv = [this](const uint8_t* bytes, size_t n) { return nghttp2_session_mem_recv(session_, bytes, n) >= 0; };
  if (!ack_filter_ || ack_filter_->done()) return recv(data, size);
  return ack_filter_->Pass(data, size, recv);
}

Awaitable<void> H2Connection::Run(std::string initial) {
  if (!initial.empty() && !Feed(reinterpret_cast<const uint8_t*>(initial.data()), initial.size())) {
    // A bad preface or first frame: nghttp2 has queued its GOAWAY; the writer sends it.
    closed_ = true;
  }
  co_await (ReadLoop() && WriteLoop());
  if (!peer_done_ && socket_.is_open()) co_await Linger();
}

namespace {
constexpr auto kLingerTime = std::chrono::seconds(1);
constexpr size_t kLingerBytes = 1 << 20;
}  // namespace

Awaitable<void> H2Connection::Linger() {
  boost::system::error_code ec;
  socket_.shutdown(Socket::shutdown_send, ec);
  if (ec) co_return;
  Timer timer(socket_.get_executor(), kLingerTime);
  co_await (DrainInput() || timer.async_wait(kNoThrowAwaitable));
}

Awaitable<void> H2Connection::DrainInput() {
  for (size_t drained = 0; drained < kLingerBytes;) {
    auto [ec, n] = co_await socket_.async_read_some(asio::buffer(in_), kNoThrow);
    if (ec) co_return;
    drained += n;
  }
}

Awaitable<void> H2Connection::ReadLoop() {
  while (!closed_) {
    boost::system::error_code ec;
    size_t n = 0;
    // An upstream connection reads answers it waits for: a reset or close that came with the
    // last bytes read raises no edge of its own (draining_read.h), and waiting for one would
    // leave its streams hanging until their timeouts. So it tries the socket before waiting. A
    // server's reads wait for a client's next frames, where the edge suffices.
    if (role_ != Role::kClient || !ReadNow(socket_, asio::buffer(in_), ec, n)) {
      std::tie(ec, n) = co_await socket_.async_read_some(DrainingBuffer(asio::buffer(in_)), kNoThrow);
    }
    if (ec) peer_done_ = true;
    if (ec) {
      closed_ = true;
    } else if (!Feed(in_.data(), n)) {
      closed_ = protocol_error_ = true;
    }
    Kick();
    if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)) break;
  }
}

Awaitable<void> H2Connection::WriteLoop() {
  for (;;) {
    out_.clear();
    while (out_.size() < kWriteBatch) {
      const uint8_t* data = nullptr;
      ssize_t n = nghttp2_session_mem_send(session_, &data);
      if (n <= 0) break;  // nothing more now (or a fatal error: the session is over)
      out_.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
    }
    if (!out_.empty() && socket_.is_open()) {
      asio::const_buffer bytes = asio::buffer(out_);
      if (!co_await WriteGather(socket_, {&bytes, 1})) continue;
      closed_ = true;
    }
    bool over = !nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_);
    if (closed_ || over) break;
    wake_.expires_at(Timer::time_point::max());
    co_await wake_.async_wait(kNoThrow);
  }
  // The session is over: end the reader too.
  Close();
}

}  // namespace tern::proxy
