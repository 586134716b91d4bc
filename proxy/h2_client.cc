#include "proxy/h2_client.h"

#include <boost/asio.hpp>

#include "proxy/upstream_connect.h"

namespace tern::proxy {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

H2ClientPool::Stream* StreamOf(H2Connection& c, int32_t id) {
  return static_cast<H2ClientPool::Stream*>(nghttp2_session_get_stream_user_data(c.session(), id));
}

}  // namespace

H2ClientPool::H2ClientPool(asio::any_io_executor ex, bool passthrough_source, std::chrono::milliseconds connect_timeout)
    : ex_(ex), passthrough_source_(passthrough_source), connect_timeout_(connect_timeout), gone_(ex) {}

H2ClientPool::~H2ClientPool() = default;

std::unique_ptr<H2ClientPool::Stream> H2ClientPool::Open(const tcp::endpoint& to, const Headers& request, bool has_body) {
  H2Connection* conn = nullptr;
  if (auto it = by_endpoint_.find(to);
      it != by_endpoint_.end() && !it->second->closed() && nghttp2_session_check_request_allowed(it->second->session())) {
    conn = it->second;
  } else {
    conns_.push_back(std::make_unique<H2Connection>(tcp::socket(ex_), H2Connection::Role::kClient, *this));
    conn = conns_.back().get();
    by_endpoint_[to] = conn;
    ++live_;
    asio::co_spawn(ex_, Run(conn, to), asio::detached);
  }
  auto s = std::make_unique<Stream>(ex_);
  s->conn = conn;
  s->request_end = !has_body;
  auto nva = NameValues(request);
  nghttp2_data_provider body{.source = {.ptr = s.get()}, .read_callback = &H2ClientPool::ReadBody};
  s->id = nghttp2_submit_request(conn->session(), nullptr, nva.data(), nva.size(), has_body ? &body : nullptr, s.get());
  if (s->id < 0) return nullptr;
  streams_[conn].push_back(s.get());
  conn->Kick();
  return s;
}

void H2ClientPool::Feed(Stream& s, const uint8_t* data, size_t size) {
  s.request_body.Append(data, size);
  if (s.closed) return;
  nghttp2_session_resume_data(s.conn->session(), s.id);
  s.conn->Kick();
}

void H2ClientPool::EndRequest(Stream& s) {
  s.request_end = true;
  if (s.closed) return;
  nghttp2_session_resume_data(s.conn->session(), s.id);
  s.conn->Kick();
}

void H2ClientPool::Consumed(Stream& s, size_t size) {
  if (!s.conn || s.conn->closed()) return;
  if (s.closed) nghttp2_session_consume_connection(s.conn->session(), size);
  else nghttp2_session_consume(s.conn->session(), s.id, size);
  s.conn->Kick();
}

void H2ClientPool::Cancel(Stream& s) {
  // While s.conn is set the connection object (and its session) is alive: Run clears s.conn of
  // every stream still listed before it frees the connection.
  if (s.conn) {
    if (!s.closed && !s.conn->closed()) nghttp2_submit_rst_stream(s.conn->session(), NGHTTP2_FLAG_NONE, s.id, NGHTTP2_CANCEL);
    // Bytes received but never taken still count against the connection's window.
    if (size_t left = s.body.Clear()) nghttp2_session_consume_connection(s.conn->session(), left);
    nghttp2_session_set_stream_user_data(s.conn->session(), s.id, nullptr);
    s.conn->Kick();
    std::erase(streams_[s.conn], &s);
  }
  s.conn = nullptr;
  s.closed = true;
}

asio::awaitable<void> H2ClientPool::Wait(Stream& s) {
  s.wake.expires_at(asio::steady_timer::time_point::max());
  co_await s.wake.async_wait(asio::as_tuple(asio::use_awaitable));
}

asio::awaitable<void> H2ClientPool::Shutdown() {
  for (auto& c : conns_) c->Close();
  while (live_ > 0) {
    gone_.expires_at(asio::steady_timer::time_point::max());
    co_await gone_.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

asio::awaitable<void> H2ClientPool::Run(H2Connection* conn, tcp::endpoint to) {
  bool connected = co_await ConnectUpstream(conn->socket(), to, passthrough_source_, connect_timeout_) == ConnectResult::kOk;
  if (connected && !conn->closed()) co_await conn->Run("");
  conn->Close();
  // Every stream still open on it is over; every stream still listed (open or not) lets go
  // of the connection before it is freed.
  for (Stream* s : streams_[conn]) {
    if (!s->closed) {
      s->closed = true;
      s->connect_failed = !connected;
    }
    s->conn = nullptr;
    s->wake.cancel();
  }
  streams_.erase(conn);
  if (auto it = by_endpoint_.find(to); it != by_endpoint_.end() && it->second == conn) by_endpoint_.erase(it);
  std::erase_if(conns_, [&](const auto& p) { return p.get() == conn; });
  if (--live_ == 0) gone_.cancel();
}

int H2ClientPool::OnHeader(H2Connection& c, const nghttp2_frame& f, std::string_view name, std::string_view value) {
  Stream* s = f.hd.type == NGHTTP2_HEADERS ? StreamOf(c, f.hd.stream_id) : nullptr;
  if (!s) return 0;
  // Past the bounds the stream is reset (the client gets 503 or a closed connection).
  return s->answer.Add(name, value) ? 0 : NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
}

int H2ClientPool::OnFrameRecv(H2Connection& c, const nghttp2_frame& f) {
  Stream* s = f.hd.stream_id ? StreamOf(c, f.hd.stream_id) : nullptr;
  if (!s || (f.hd.type != NGHTTP2_HEADERS && f.hd.type != NGHTTP2_DATA)) return 0;
  if (f.hd.type == NGHTTP2_HEADERS && s->answer.End() == AnswerHeaders::Block::kInterim) return 0;
  if (f.hd.type == NGHTTP2_HEADERS) s->headers_done = true;
  if (f.hd.flags & NGHTTP2_FLAG_END_STREAM) s->end = true;
  s->wake.cancel();
  return 0;
}

int H2ClientPool::OnData(H2Connection& c, int32_t stream, const uint8_t* data, size_t size) {
  Stream* s = StreamOf(c, stream);
  if (!s) {
    nghttp2_session_consume(c.session(), stream, size);
    return 0;
  }
  s->body.Append(data, size);
  s->wake.cancel();
  return 0;
}

int H2ClientPool::OnStreamClose(H2Connection& c, int32_t stream, uint32_t /*error_code*/) {
  Stream* s = StreamOf(c, stream);
  if (!s) return 0;
  s->closed = true;  // it stays listed (and s->conn set) until its owner cancels it
  s->wake.cancel();
  return 0;
}

ssize_t H2ClientPool::ReadBody(nghttp2_session* session, int32_t stream, uint8_t* buf, size_t length, uint32_t* flags,
                               nghttp2_data_source*, void*) {
  // Found through the stream's user data, which Cancel clears: a cancelled Stream is never read.
  auto* found = static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, stream));
  if (!found) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  auto& s = *found;
  size_t n = s.request_body.Take(buf, length);
  if (n > 0) s.wake.cancel();  // room for more of the client's body
  if (s.request_body.size() == 0) {
    if (!s.request_end) return n > 0 ? static_cast<ssize_t>(n) : static_cast<ssize_t>(NGHTTP2_ERR_DEFERRED);
    *flags |= NGHTTP2_DATA_FLAG_EOF;
  }
  return static_cast<ssize_t>(n);
}

}  // namespace tern::proxy
