#include "core/log/logger.h"
#include "proxy/h2_upstream_pool.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <algorithm>
#include <optional>

#include "proxy/upstream_connect.h"

namespace tern::proxy {

namespace asio = boost::asio;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

struct H2UpstreamPool::Conn {
  std::unique_ptr<H2Connection> h2;
  Key key;
  std::shared_ptr<ClusterState> cluster;  // null inbound
  std::optional<istio::TcpKeepalive> keepalive;
  int64_t max_streams = 0;  // maxRequestsPerConnection; 0: no limit
  std::chrono::milliseconds idle_timeout{std::chrono::hours(1)};
  int64_t opened = 0;                    // streams begun on it
  std::vector<H2UpstreamStream*> streams;  // attached: open, or over but not released yet
  size_t open_streams = 0;                 // of them, the ones still open
  Clock::time_point idle_since = Clock::now();
  bool retired = false;  // takes no new stream (GOAWAY, maxRequestsPerConnection): closed once idle
  bool connected = false;

  bool spent() const { return max_streams > 0 && opened >= max_streams; }
  // As many streams open as the peer allows at once: a new stream would wait in nghttp2's queue
  // behind them (head-of-line blocking across sessions); one more connection takes it instead.
  bool saturated() const {
    return open_streams >= nghttp2_session_get_remote_settings(h2->session(), NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
  }
  // `s`, attached here, is over (closed by the peer, reset, or released).
  void Closed(H2UpstreamStream& s) {
    if (!s.closed_ && open_streams > 0) --open_streams;
    s.closed_ = true;
  }
};

H2UpstreamStream::~H2UpstreamStream() {
  if (pool_) pool_->Release(*this);
}

H2UpstreamPool::H2UpstreamPool(Executor ex) : ex_(ex), sweep_timer_(ex) {}

H2UpstreamPool::~H2UpstreamPool() { Shutdown(); }

namespace {

H2UpstreamStream* StreamOf(H2Connection& c, int32_t id) {
  return static_cast<H2UpstreamStream*>(nghttp2_session_get_stream_user_data(c.session(), id));
}

}  // namespace

H2UpstreamPool::Conn* H2UpstreamPool::Usable(const Key& key) {
  for (size_t i = 0;;) {
    auto it = by_key_.find(key);  // looked up again: Retire edits the list
    if (it == by_key_.end() || i >= it->second.size()) return nullptr;
    Conn* c = it->second[i];
    if (c->h2->closed() || c->spent() || !nghttp2_session_check_request_allowed(c->h2->session())) {
      Retire(*c);  // off the list: it finishes its streams; new ones go on another connection
      continue;
    }
    if (!c->saturated()) return c;
    ++i;
  }
}

void H2UpstreamPool::Retire(Conn& c) {
  c.retired = true;
  if (auto it = by_key_.find(c.key); it != by_key_.end()) {
    std::erase(it->second, &c);
    if (it->second.empty()) by_key_.erase(it);
  }
  if (c.streams.empty()) c.h2->Close();
}

ResponseFlag H2UpstreamPool::Open(H2UpstreamStream& s, const tcp::endpoint& to, const Cluster* cluster, bool inbound,
                                 std::chrono::milliseconds connect_timeout, const Headers& request, bool has_body) {
  if (shut_down_) return ResponseFlag::kUpstreamOverflow;
  if (s.attached()) Release(s);  // a stream is on one connection at a time
  ClusterState* state = cluster ? cluster->state.get() : nullptr;
  Key key{to, state, inbound};
  Conn* conn = Usable(key);
  if (!conn) {
    if (state && !slots_.Take(*state, cluster->limits.max_connections)) return ResponseFlag::kUpstreamOverflow;
    auto owned = std::make_unique<Conn>();
    conn = owned.get();
    conn->h2 = std::make_unique<H2Connection>(Socket(ex_), H2Connection::Role::kClient, *this);
    conn->key = key;
    if (cluster) {
      conn->cluster = cluster->state;
      conn->max_streams = cluster->limits.max_requests_per_connection;
      conn->idle_timeout = cluster->limits.idle_timeout;
      conn->keepalive = cluster->limits.keepalive;
      if (cluster->limits.connect_timeout) connect_timeout = *cluster->limits.connect_timeout;
    }
    conns_.push_back(std::move(owned));
    by_key_[key].push_back(conn);
    by_h2_[conn->h2.get()] = conn;
    asio::co_spawn(ex_, Run(conn, connect_timeout), asio::detached);
    if (!sweeping_) {
      sweeping_ = true;
      asio::co_spawn(ex_, Sweep(), asio::detached);
    }
  }
  NameValues nva(request);
  nghttp2_data_provider body{.source = {.ptr = nullptr}, .read_callback = &H2UpstreamPool::ReadBody};
  int32_t id = nghttp2_submit_request(conn->h2->session(), nullptr, nva.data(), nva.size(), has_body ? &body : nullptr, &s);
  if (id < 0) return ResponseFlag::kUpstreamOverflow;
  s.pool_ = this;
  s.conn_ = conn->h2.get();
  s.id_ = id;
  s.closed_ = false;
  conn->streams.push_back(&s);
  ++conn->open_streams;
  ++conn->opened;
  conn->h2->Kick();
  if (conn->spent()) Retire(*conn);  // its last stream: closed as soon as that one is over
  if (conn->connected) s.OnConnected();
  return ResponseFlag::kNone;
}

void H2UpstreamPool::Resume(H2UpstreamStream& s) {
  if (!s.open()) return;
  nghttp2_session_resume_data(s.conn_->session(), s.id_);
  s.conn_->Kick();
}

void H2UpstreamPool::Consumed(H2UpstreamStream& s, size_t size) {
  // Only the stream's window: the connection's opened as the bytes arrived (OnData).
  if (!s.open() || s.conn_->closed() || size == 0) return;
  nghttp2_session_consume_stream(s.conn_->session(), s.id_, size);
  s.conn_->Kick();
}

void H2UpstreamPool::Detach(Conn& conn, H2UpstreamStream& s) {
  conn.Closed(s);
  std::erase(conn.streams, &s);
  if (conn.streams.empty()) {
    conn.idle_since = Clock::now();
    if (conn.retired) conn.h2->Close();
  }
  s.conn_ = nullptr;
  s.pool_ = nullptr;
  s.closed_ = true;
}

void H2UpstreamPool::Release(H2UpstreamStream& s) {
  if (!s.conn_) {
    s.pool_ = nullptr;
    return;
  }
  H2Connection& h2 = *s.conn_;
  // Never reached again: what the upstream still sends on it is acknowledged and dropped
  // (OnData finds no one), and its body is never asked for (the writer may still run on a
  // connection the reader saw end).
  nghttp2_session_set_stream_user_data(h2.session(), s.id_, nullptr);
  if (!h2.closed()) {
    if (!s.closed_) nghttp2_submit_rst_stream(h2.session(), NGHTTP2_FLAG_NONE, s.id_, NGHTTP2_CANCEL);
    h2.Kick();
  }
  if (auto it = by_h2_.find(&h2); it != by_h2_.end()) Detach(*it->second, s);
}

Awaitable<void> H2UpstreamPool::Run(Conn* conn, std::chrono::milliseconds connect_timeout) {
  const tcp::endpoint to = std::get<0>(conn->key);
  const bool inbound = std::get<2>(conn->key);
  bool connected = co_await ConnectUpstream(conn->h2->socket(), to, inbound, connect_timeout) == ConnectResult::kOk;
  if (connected && conn->keepalive) Report(ApplyKeepalive(conn->h2->socket(), *conn->keepalive));
  if (connected) {
    conn->connected = true;
    // Owners only start their try's clock here: no stream is opened or released meanwhile.
    for (H2UpstreamStream* s : conn->streams) {
      if (!s->closed_) s->OnConnected();
    }
  }
  if (connected && !conn->h2->closed()) co_await conn->h2->Run("");
  const ConnectionLoss loss = !connected                   ? ConnectionLoss::kConnectFailed
                              : conn->h2->protocol_error() ? ConnectionLoss::kProtocolError
                                                           : ConnectionLoss::kClosed;
  conn->h2->Close();
  if (auto it = by_key_.find(conn->key); it != by_key_.end()) {
    std::erase(it->second, conn);
    if (it->second.empty()) by_key_.erase(it);
  }
  // Every stream still attached lets go of the connection before it is freed; the open ones
  // hear that it failed. Taken one at a time off the list: an owner told may open its stream
  // again elsewhere, or release (destroy) others of the list meanwhile.
  while (!conn->streams.empty()) {
    H2UpstreamStream* s = conn->streams.back();
    conn->streams.pop_back();
    bool was_open = !s->closed_;
    s->conn_ = nullptr;
    s->pool_ = nullptr;
    s->closed_ = true;
    if (was_open) s->OnConnectionLost(loss);
  }
  Uncount(*conn);
  by_h2_.erase(conn->h2.get());
  std::erase_if(conns_, [&](const auto& p) { return p.get() == conn; });
}

Awaitable<void> H2UpstreamPool::Sweep() {
  while (!shut_down_ && !conns_.empty()) {
    sweep_timer_.expires_after(std::chrono::seconds(1));
    auto [ec] = co_await sweep_timer_.async_wait(kNoThrow);
    if (ec || shut_down_) break;
    auto now = Clock::now();
    for (auto& c : conns_) {
      if (c->streams.empty() && now - c->idle_since >= c->idle_timeout) c->h2->Close();
    }
  }
  sweeping_ = false;
}

void H2UpstreamPool::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  sweep_timer_.cancel();
  for (auto& c : conns_) {
    // The owners of streams still attached may outlive the pool (sessions end after the
    // worker's pools when the worker is torn down): they forget it.
    for (H2UpstreamStream* s : c->streams) {
      s->conn_ = nullptr;
      s->pool_ = nullptr;
      s->closed_ = true;
    }
    c->streams.clear();
    c->h2->Close();
    Uncount(*c);  // its coroutine may never run again (the worker is ending)
  }
}

void H2UpstreamPool::Uncount(Conn& c) {
  if (!c.cluster) return;
  slots_.Give(*c.cluster);
  c.cluster = nullptr;  // counted out once
}

int H2UpstreamPool::OnHeader(H2Connection& c, const nghttp2_frame& f, std::string_view name, std::string_view value) {
  H2UpstreamStream* s = f.hd.type == NGHTTP2_HEADERS ? StreamOf(c, f.hd.stream_id) : nullptr;
  return s ? s->OnAnswerField(name, value) : 0;
}

int H2UpstreamPool::OnFrameRecv(H2Connection& c, const nghttp2_frame& f) {
  if (f.hd.type != NGHTTP2_HEADERS && f.hd.type != NGHTTP2_DATA) return 0;
  if (H2UpstreamStream* s = f.hd.stream_id ? StreamOf(c, f.hd.stream_id) : nullptr) s->OnAnswerFrame(f);
  return 0;
}

int H2UpstreamPool::OnData(H2Connection& c, int32_t stream, const uint8_t* data, size_t size) {
  H2UpstreamStream* s = StreamOf(c, stream);
  if (!s) {
    nghttp2_session_consume(c.session(), stream, size);  // released: acknowledged and dropped
    return 0;
  }
  // The connection's window opens at once, the stream's only as its owner passes the bytes on
  // (Consumed): a client that reads slowly holds back its own stream (at most its window
  // buffered here), never the other sessions' streams on the shared connection.
  nghttp2_session_consume_connection(c.session(), size);
  s->OnAnswerData(data, size);
  return 0;
}

int H2UpstreamPool::OnStreamClose(H2Connection& c, int32_t stream, uint32_t error_code) {
  H2UpstreamStream* s = StreamOf(c, stream);
  if (!s) return 0;
  if (auto it = by_h2_.find(&c); it != by_h2_.end()) it->second->Closed(*s);
  else s->closed_ = true;
  // It stays attached (its owner still takes what it buffered) until released.
  s->OnClosed(error_code);
  return 0;
}

ssize_t H2UpstreamPool::ReadBody(nghttp2_session* session, int32_t stream, uint8_t* buf, size_t length, uint32_t* flags,
                                 nghttp2_data_source*, void*) {
  // Found through the stream's user data, which Release clears: a released stream is never read.
  auto* s = static_cast<H2UpstreamStream*>(nghttp2_session_get_stream_user_data(session, stream));
  if (!s) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  return s->ReadRequestBody(session, buf, length, flags);
}

void H2UpstreamPool::Report(const Status& s) {
  if (!s.ok() && log_ && option_warning_.Due()) {
    log_->Warn("socket option refused", {{"error", s.message()}, {"since_last_warning", option_warning_.suppressed()}});
  }
}

}  // namespace tern::proxy
