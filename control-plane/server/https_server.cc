#include "control-plane/server/https_server.h"

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/status.hpp>
#include <atomic>
#include <cstdio>
#include <deque>
#include <list>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/base/ascii.h"

namespace tern::control_plane {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using error_code = boost::system::error_code;

std::string_view HttpRequest::Header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (AsciiIEquals(n, name)) return v;
  }
  return {};
}

namespace {

using StrandExecutor = asio::strand<asio::io_context::executor_type>;
using TcpSocket = asio::basic_stream_socket<tcp, StrandExecutor>;
using TlsStream = ssl::stream<TcpSocket>;
using WatchdogTimer = asio::basic_waitable_timer<Clock, asio::wait_traits<Clock>, StrandExecutor>;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

// After an answer that ends the connection, what the client still sends is read and dropped for
// this long (and this much) before the socket closes: closing with unread bytes would reset the
// connection, and a reset can destroy the answer before the client reads it.
constexpr auto kLingerTime = std::chrono::seconds(1);
constexpr size_t kLingerBytes = 4 << 20;

// kStream: a long-lived response waiting for its next chunk (no deadline; not idle).
enum class Phase { kHandshake, kIdle, kRequest, kWrite, kClosing, kStream };

const char* PhaseName(Phase p) {
  switch (p) {
    case Phase::kHandshake: return "handshake";
    case Phase::kIdle: return "idle";
    case Phase::kRequest: return "request";
    case Phase::kWrite: return "write";
    case Phase::kClosing: return "closing";
    case Phase::kStream: return "stream";
  }
  return "?";
}

// One client connection. Everything but `idle`, `idle_since` and `evicting` is touched only on
// its strand; those three are read by the acceptor when it must make room.
struct Connection : std::enable_shared_from_this<Connection> {
  Connection(TcpSocket socket, ssl::context& tls) : stream(std::move(socket), tls), timer(stream.get_executor()) {
    idle_since_ns = Clock::now().time_since_epoch().count();
    timer.expires_at(Clock::time_point::max());  // until the session enters its first phase
  }

  // Starts `phase`, which must be over by `timeout` from now.
  void Enter(Phase p, std::chrono::milliseconds timeout) {
    phase = p;
    // Wakes the watchdog, which waits again for the new deadline.
    if (p == Phase::kStream) timer.expires_at(Clock::time_point::max());
    else timer.expires_after(timeout);
    const bool waiting = p == Phase::kHandshake || p == Phase::kIdle;
    if (waiting) idle_since_ns.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
    idle.store(waiting, std::memory_order_relaxed);
  }
  void Close() {
    error_code ignored;
    stream.lowest_layer().close(ignored);
  }

  TlsStream stream;
  WatchdogTimer timer;
  Phase phase = Phase::kHandshake;
  bool timed_out = false;  // the request phase's deadline passed: answered 408
  bool finished = false;
  std::atomic<bool> idle{true};
  std::atomic<int64_t> idle_since_ns{0};
  std::atomic<bool> evicting{false};
  std::list<Connection*>::iterator slot;  // in Impl::connections
};

std::string StatusLine(int status) {
  auto reason = http::obsolete_reason(http::int_to_status(static_cast<unsigned>(status)));
  return "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason.data(), reason.size()) + "\r\n";
}

std::string Serialize(const HttpResponse& r, bool keep_alive) {
  std::string out = StatusLine(r.status);
  out += "Content-Type: " + r.content_type + "\r\nContent-Length: " + std::to_string(r.body.size()) + "\r\n";
  if (!keep_alive) out += "Connection: close\r\n";
  out += "\r\n";
  out += r.body;
  return out;
}

HttpResponse JsonError(int status, const std::string& message) {
  return {status, "application/json", nlohmann::json({{"error", message}}).dump()};
}

// The queue between a ResponseStream's senders (any thread) and its connection's writer (the
// connection's strand).
class StreamState final : public ResponseStream, public std::enable_shared_from_this<StreamState> {
 public:
  StreamState(StrandExecutor strand, size_t max_queued) : strand_(std::move(strand)), wake_(strand_), max_queued_(max_queued) {
    wake_.expires_at(Clock::time_point::max());
  }
  bool Send(std::string chunk) override {
    if (chunk.empty()) return open();
    bool sent = true;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (ended_) return false;
      if (queued_bytes_ + chunk.size() > max_queued_) {
        ended_ = cut_ = true;  // fallen too far behind: cut, what is queued dropped
        queue_.clear();
        queued_bytes_ = 0;
        sent = false;
      } else {
        queued_bytes_ += chunk.size();
        queue_.push_back(std::move(chunk));
      }
    }
    Wake();
    return sent;
  }
  void Close() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ended_ = true;
    }
    Wake();
  }
  bool open() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return !ended_;
  }
  // The writer's side (on the strand).
  std::deque<std::string> Take(bool* ended, bool* cut) {
    std::lock_guard<std::mutex> lock(mu_);
    std::deque<std::string> out;
    out.swap(queue_);
    queued_bytes_ = 0;
    *ended = ended_;
    *cut = cut_;
    return out;
  }
  WatchdogTimer& wake() { return wake_; }
  void ClientGone() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      client_gone_ = ended_ = true;
    }
    wake_.cancel();  // on the strand already
  }
  bool client_gone() const {
    std::lock_guard<std::mutex> lock(mu_);
    return client_gone_;
  }

 private:
  void Wake() {
    asio::post(strand_, [self = shared_from_this()] { self->wake_.cancel(); });
  }
  StrandExecutor strand_;
  WatchdogTimer wake_;
  const size_t max_queued_;
  mutable std::mutex mu_;
  std::deque<std::string> queue_;
  size_t queued_bytes_ = 0;
  bool ended_ = false, cut_ = false, client_gone_ = false;
};

}  // namespace

struct HttpsServer::Impl {
  Impl(const HttpsServerOptions& o, Registry* registry, const Logger& l)
      : options(o),
        log(l),
        metrics(registry ? registry : &own_metrics),
        connections_total(metrics->AddCounter("tern_server_connections_total",
                                              "Client connections to ternd's HTTPS port, by what became of them.",
                                              {"event"})),
        timeouts_total(metrics->AddCounter("tern_server_timeouts_total",
                                           "Connections cut by a phase's deadline.", {"phase"})),
        refused_total(metrics->AddCounter("tern_server_requests_refused_total",
                                          "Requests answered with an error before reaching a handler.", {"reason"})),
        accepted(connections_total.With({"accepted"})),
        evicted(connections_total.With({"evicted"})),
        refused(connections_total.With({"refused"})),
        closed(connections_total.With({"closed"})),
        handshake_failed(connections_total.With({"handshake_failed"})),
        blocking(static_cast<size_t>(std::max(1, o.blocking_threads))) {}

  // Room for one more connection: true when under the cap, or when the connection idle the
  // longest was told to close; false when every connection is busy.
  bool MakeRoom() {
    std::lock_guard<std::mutex> lock(mu);
    if (connections.size() < options.max_connections) return true;
    Connection* oldest = nullptr;
    int64_t oldest_since = 0;
    for (Connection* c : connections) {
      if (!c->idle.load(std::memory_order_relaxed) || c->evicting.load(std::memory_order_relaxed)) continue;
      int64_t since = c->idle_since_ns.load(std::memory_order_relaxed);
      if (!oldest || since < oldest_since) oldest = c, oldest_since = since;
    }
    if (!oldest) return false;
    oldest->evicting = true;
    evicted.Inc();
    // Listed, it is alive (its session unlists it before it can be destroyed), so it can be
    // held here; the close runs on its strand, where it may find the session already over.
    asio::post(oldest->stream.get_executor(), [keep = oldest->shared_from_this()] {
      if (!keep->finished) keep->Close();
    });
    return true;
  }

  asio::awaitable<void> Accept() {
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(asio::make_strand(io), kNoThrow);
      if (stopping.load()) co_return;
      if (ec) {
        if (ec == asio::error::operation_aborted) co_return;
        // Out of descriptors or memory: every connection still served, new ones wait a moment.
        log.Warn("accept failed", {{"error", ec.message()}});
        asio::steady_timer pause(io, std::chrono::milliseconds(100));
        co_await pause.async_wait(kNoThrow);
        continue;
      }
      accepted.Inc();
      if (!MakeRoom()) {
        refused.Inc();
        error_code ignored;
        socket.close(ignored);
        continue;
      }
      error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);  // without it Nagle and delayed ACKs add ~40 ms per answer
      auto c = std::make_shared<Connection>(std::move(socket), tls);
      {
        std::lock_guard<std::mutex> lock(mu);
        c->slot = connections.insert(connections.end(), c.get());
      }
      c->Enter(Phase::kHandshake, options.handshake_timeout);  // counted from the accept
      asio::co_spawn(c->stream.get_executor(), Watchdog(c), asio::detached);
      asio::co_spawn(c->stream.get_executor(), Serve(c), [this](std::exception_ptr e) {
        if (!e) return;
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& x) {
          log.Error("connection ended by an exception", {{"error", x.what()}});
        }
      });
    }
  }

  // Ends the connection's current phase when its deadline passes. A request cut mid-way has its
  // reads cancelled and is answered 408 by the session; every other phase closes the socket.
  asio::awaitable<void> Watchdog(std::shared_ptr<Connection> c) {
    for (;;) {
      co_await c->timer.async_wait(kNoThrow);
      if (c->finished) co_return;
      if (c->timer.expiry() > Clock::now()) continue;  // the session moved the deadline
      timeouts_total.With({PhaseName(c->phase)}).Inc();
      if (c->phase == Phase::kRequest) {
        c->timed_out = true;
        error_code ignored;
        c->stream.lowest_layer().cancel(ignored);
        c->timer.expires_at(Clock::time_point::max());  // until the session starts writing the 408
        continue;
      }
      c->Close();
      co_return;
    }
  }

  struct Unlist {
    Impl& impl;
    Connection& c;
    ~Unlist() {
      c.finished = true;
      if (!impl.stopping.load()) {  // else the io_context is being destroyed: its sockets close with it
        c.timer.cancel();
        c.Close();
      }
      std::lock_guard<std::mutex> lock(impl.mu);
      impl.connections.erase(c.slot);
      impl.closed.Inc();
    }
  };

  asio::awaitable<void> Serve(std::shared_ptr<Connection> c) {
    Unlist unlist{*this, *c};
    std::string peer;
    {
      error_code ec;
      auto ep = c->stream.lowest_layer().remote_endpoint(ec);
      if (!ec) peer = ep.address().to_string() + ":" + std::to_string(ep.port());
    }
    auto [hec] = co_await c->stream.async_handshake(ssl::stream_base::server, kNoThrow);
    if (hec) {
      if (c->phase == Phase::kHandshake) handshake_failed.Inc();
      if (log.Enabled(LogLevel::kDebug)) log.Log(LogLevel::kDebug, "TLS handshake failed", {{"peer", peer}, {"error", hec.message()}});
      co_return;
    }
    boost::beast::flat_buffer buffer;
    for (;;) {
      // Between requests: nothing is held but the buffer's room for the next one.
      c->Enter(Phase::kIdle, options.idle_timeout);
      if (buffer.size() == 0) {
        auto [ec, n] = co_await c->stream.async_read_some(buffer.prepare(4096), kNoThrow);
        if (ec || stopping.load()) co_return;
        buffer.commit(n);
      }
      c->Enter(Phase::kRequest, options.request_timeout);
      http::request_parser<http::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(options.max_header_bytes));
      parser.body_limit(options.max_body_bytes);
      auto [rec, rn] = co_await http::async_read_header(c->stream, buffer, parser, kNoThrow);
      if (!rec && AsciiIEquals(parser.get()[http::field::expect], "100-continue") && !parser.is_done()) {
        c->Enter(Phase::kWrite, options.write_timeout);
        auto [wec, wn] = co_await asio::async_write(c->stream, asio::buffer("HTTP/1.1 100 Continue\r\n\r\n", 25), kNoThrow);
        if (wec) co_return;
        c->Enter(Phase::kRequest, options.request_timeout);
      }
      if (!rec && !parser.is_done()) std::tie(rec, rn) = co_await http::async_read(c->stream, buffer, parser, kNoThrow);
      if (rec) {
        HttpResponse answer;
        if (c->timed_out) {
          answer = JsonError(408, "request not received within " + std::to_string(options.request_timeout.count()) + " ms");
          refused_total.With({"timeout"}).Inc();
        } else if (rec == http::error::body_limit) {
          answer = JsonError(413, "request body exceeds " + std::to_string(options.max_body_bytes) + " bytes");
          refused_total.With({"body_too_large"}).Inc();
        } else if (rec == http::error::header_limit) {
          answer = JsonError(431, "request header exceeds " + std::to_string(options.max_header_bytes) + " bytes");
          refused_total.With({"header_too_large"}).Inc();
        } else if (rec.category() == http::make_error_code(http::error::bad_target).category() &&
                   rec != http::error::partial_message && rec != http::error::end_of_stream) {
          answer = JsonError(400, "malformed request: " + rec.message());
          refused_total.With({"malformed"}).Inc();
        } else {
          co_return;  // the connection ended, broke off mid-request or was evicted
        }
        co_await Answer(*c, answer, false);
        co_await Linger(*c);
        co_return;
      }
      auto& message = parser.get();
      HttpRequest request;
      request.method = std::string(message.method_string());
      request.target = std::string(message.target());
      for (const auto& f : message) request.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
      request.body = std::move(message.body());
      request.peer = peer;
      const bool keep_alive = message.keep_alive() && !stopping.load();
      if (auto stream = FindStream(request); stream) {
        auto state = std::make_shared<StreamState>(c->stream.get_executor(), options.max_stream_queue_bytes);
        // On the blocking pool; this coroutine resumes on its strand with the answer.
        HttpResponse first = co_await asio::co_spawn(
            blocking.get_executor(), CallBlocking([&] { return Call(request, [&] { return (*stream)(request, state); }); }),
            asio::use_awaitable);
        if (first.status == 200) {
          co_await RunStream(c, state, first);
          co_return;
        }
        state->Close();
        if (!co_await Answer(*c, first, keep_alive)) co_return;
        if (!keep_alive) {
          co_await Linger(*c);
          co_return;
        }
        continue;
      }
      HttpResponse answer = Dispatch(request);
      if (!co_await Answer(*c, answer, keep_alive)) co_return;
      if (!keep_alive) {
        co_await Linger(*c);
        co_return;
      }
    }
  }

  HttpResponse Dispatch(const HttpRequest& request) {
    auto path = routes.find(std::string(request.path()));
    if (path == routes.end()) return JsonError(404, "no handler for " + request.method + " " + std::string(request.path()));
    auto handler = path->second.find(request.method);
    if (handler == path->second.end()) {
      return JsonError(405, "method " + request.method + " is not allowed on " + std::string(request.path()));
    }
    return Call(request, [&] { return handler->second(request); });
  }

  const StreamHandler* FindStream(const HttpRequest& request) const {
    auto path = stream_routes.find(std::string(request.path()));
    if (path == stream_routes.end()) return nullptr;
    auto handler = path->second.find(request.method);
    return handler == path->second.end() ? nullptr : &handler->second;
  }

  static asio::awaitable<HttpResponse> CallBlocking(std::function<HttpResponse()> work) { co_return work(); }

  // A handler's answer; an exception it throws is a 500 (and a log line), never the process.
  template <class F>
  HttpResponse Call(const HttpRequest& request, F&& handler) {
    try {
      return handler();
    } catch (const std::exception& e) {
      log.Error("handler failed", {{"path", std::string(request.path())}, {"error", e.what()}});
      return JsonError(500, std::string("internal error: ") + e.what());
    }
  }

  // A long-lived response: the head, then every chunk sent to `state` as it comes, until the
  // sender closes it (the last chunk) or the client leaves (a read that ends) or falls behind.
  asio::awaitable<void> RunStream(std::shared_ptr<Connection> c, std::shared_ptr<StreamState> state,
                                  const HttpResponse& first) {
    std::string out = StatusLine(200) + "Content-Type: " + first.content_type +
                      "\r\nTransfer-Encoding: chunked\r\nCache-Control: no-cache\r\n\r\n";
    auto append_chunk = [&out](const std::string& chunk) {
      char size[20];
      out.append(size, static_cast<size_t>(std::snprintf(size, sizeof size, "%zx\r\n", chunk.size())));
      out += chunk;
      out += "\r\n";
    };
    if (!first.body.empty()) append_chunk(first.body);
    // The client sends nothing more; a read that ends says it has gone. The watcher holds what
    // it reads from: it may outlive this frame (it ends when the connection is closed).
    asio::co_spawn(c->stream.get_executor(), WatchClient(c, state), asio::detached);
    for (;;) {
      if (!out.empty()) {
        c->Enter(Phase::kWrite, options.write_timeout);
        auto [ec, n] = co_await asio::async_write(c->stream, asio::buffer(out), kNoThrow);
        if (ec) break;
        out.clear();
      }
      bool ended = false, cut = false;
      for (const auto& chunk : state->Take(&ended, &cut)) append_chunk(chunk);
      if (cut || state->client_gone()) break;
      if (!out.empty()) continue;
      if (ended) {  // the last chunk; the connection then closes (the watcher's read ends)
        c->Enter(Phase::kWrite, options.write_timeout);
        co_await asio::async_write(c->stream, asio::buffer("0\r\n\r\n", 5), kNoThrow);
        break;
      }
      c->Enter(Phase::kStream, {});
      state->wake().expires_at(Clock::time_point::max());
      co_await state->wake().async_wait(kNoThrow);
    }
    state->Close();
  }

  static asio::awaitable<void> WatchClient(std::shared_ptr<Connection> c, std::shared_ptr<StreamState> state) {
    std::array<char, 512> sink;
    for (;;) {
      auto [ec, n] = co_await c->stream.async_read_some(asio::buffer(sink), kNoThrow);
      if (ec) break;
    }
    state->ClientGone();
  }

  // Writes the answer within the write deadline; false when it could not be written.
  asio::awaitable<bool> Answer(Connection& c, const HttpResponse& answer, bool keep_alive) {
    c.Enter(Phase::kWrite, options.write_timeout);
    std::string out = Serialize(answer, keep_alive);
    auto [ec, n] = co_await asio::async_write(c.stream, asio::buffer(out), kNoThrow);
    co_return !ec;
  }

  // Ends the connection after its last answer: FIN after the answer, then what the client still
  // sends is read and dropped, bounded (see kLingerTime).
  asio::awaitable<void> Linger(Connection& c) {
    c.Enter(Phase::kClosing, std::chrono::duration_cast<std::chrono::milliseconds>(kLingerTime));
    auto& socket = c.stream.next_layer();
    error_code ec;
    socket.shutdown(tcp::socket::shutdown_send, ec);
    if (ec) co_return;
    std::array<char, 16384> sink;
    for (size_t total = 0; total < kLingerBytes;) {
      auto [rec, n] = co_await socket.async_read_some(asio::buffer(sink), kNoThrow);
      if (rec) break;
      total += n;
    }
  }

  HttpsServerOptions options;
  const Logger& log;
  Registry own_metrics;  // when the caller gives none
  Registry* metrics;
  Family<Counter>& connections_total;
  Family<Counter>& timeouts_total;
  Family<Counter>& refused_total;
  Counter &accepted, &evicted, &refused, &closed, &handshake_failed;
  std::map<std::string, std::map<std::string, Handler>> routes;  // path -> method -> handler
  std::map<std::string, std::map<std::string, StreamHandler>> stream_routes;

  // Declared before the io_context: connections unlist themselves from here as their coroutine
  // frames are destroyed, which happens when the io_context is.
  std::mutex mu;
  std::list<Connection*> connections;
  ssl::context tls{ssl::context::tls_server};
  std::atomic<bool> stopping{false};
  asio::io_context io;
  tcp::acceptor acceptor{io};
  int bound_port = 0;
  // Declared after the io_context, so destroyed before it: a handler still running there refers
  // to its connection's coroutine frame, which the io_context owns.
  asio::thread_pool blocking;
};

HttpsServer::HttpsServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpsServer::~HttpsServer() = default;

Result<std::unique_ptr<HttpsServer>> HttpsServer::Create(const HttpsServerOptions& options,
                                                         std::function<void(SSL_CTX*)> configure_tls, Registry* metrics,
                                                         const Logger& log) {
  auto impl = std::make_unique<Impl>(options, metrics, log);
  impl->tls.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                        ssl::context::single_dh_use);
  if (configure_tls) configure_tls(impl->tls.native_handle());
  error_code ec;
  auto address = asio::ip::make_address(options.host, ec);
  if (ec) return Status::Error("listen address \"" + options.host + "\": " + ec.message());
  tcp::endpoint at(address, static_cast<unsigned short>(options.port));
  auto& acceptor = impl->acceptor;
  if (acceptor.open(at.protocol(), ec); !ec) {
    acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor.bind(at, ec);
    // A deep backlog: kube-apiserver opens bursts of connections, and SYNs past a short one are
    // dropped and retried a second later.
    if (!ec) acceptor.listen(1024, ec);
  }
  if (ec) {
    return Status::Error("cannot listen on " + options.host + ":" + std::to_string(options.port) + ": " + ec.message());
  }
  impl->bound_port = acceptor.local_endpoint().port();
  return std::unique_ptr<HttpsServer>(new HttpsServer(std::move(impl)));
}

void HttpsServer::Route(std::string method, std::string path, Handler handler) {
  impl_->routes[std::move(path)][std::move(method)] = std::move(handler);
}

void HttpsServer::RouteStream(std::string method, std::string path, StreamHandler handler) {
  impl_->stream_routes[std::move(path)][std::move(method)] = std::move(handler);
}

int HttpsServer::port() const { return impl_->bound_port; }

void HttpsServer::Run() {
  Impl& impl = *impl_;
  if (impl.stopping.load()) return;
  asio::co_spawn(impl.io, impl.Accept(), asio::detached);
  std::vector<std::thread> workers;
  for (int i = 1; i < std::max(1, impl.options.threads); ++i) workers.emplace_back([&impl] { impl.io.run(); });
  impl.io.run();
  for (auto& w : workers) w.join();
  // No handler runs once Run returns: what the routes refer to may go.
  impl.blocking.stop();
  impl.blocking.join();
}

void HttpsServer::Stop() {
  Impl& impl = *impl_;
  impl.stopping = true;
  // Long-lived connections would keep run() going: stop() returns every worker at once, and the
  // connections' frames are destroyed (their sockets closed) with the io_context.
  impl.io.stop();
}

}  // namespace tern::control_plane
