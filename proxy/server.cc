#include "proxy/server.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <random>
#include <thread>
#include <vector>

#include "core/log/once_every.h"
#include "core/metrics/registry.h"
#include "proxy/batched_send.h"
#include "proxy/draining_read.h"
#include "proxy/h2_upstream_pool.h"
#include "proxy/http1_parking.h"
#include "proxy/http1_pool.h"
#include "proxy/http1_session.h"
#include "proxy/http2_session.h"
#include "proxy/load_balancer.h"
#include "proxy/log_escaped.h"
#include "proxy/memory_report.h"
#include "proxy/original_dst.h"
#include "proxy/response_flags.h"
#include "proxy/sniff.h"
#include "proxy/tcp_metrics.h"
#include "proxy/tcp_pipe.h"
#include "proxy/upstream_connect.h"

namespace tern::proxy {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;

namespace {

// The destination a REDIRECTed connection was addressed to.
bool OriginalDestination(Socket& s, tcp::endpoint* out) {
  sockaddr_storage ss{};
  boost::system::error_code ec;
  bool v6 = s.local_endpoint(ec).address().is_v6();
  if (ec || !proxy::OriginalDestination(s.native_handle(), v6, &ss)) return false;
  if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    asio::ip::address_v6::bytes_type b;
    std::copy(std::begin(a->sin6_addr.s6_addr), std::end(a->sin6_addr.s6_addr), b.begin());
    *out = tcp::endpoint(asio::ip::address_v6(b), ntohs(a->sin6_port));
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    *out = tcp::endpoint(asio::ip::address_v4(ntohl(a->sin_addr.s_addr)), ntohs(a->sin_port));
  }
  return true;
}

constexpr auto kAcceptPause = std::chrono::milliseconds(100);

const char* ListenerName(ListenerKind kind) {
  switch (kind) {
    case ListenerKind::kOutbound: return "outbound";
    case ListenerKind::kInbound: return "inbound";
    case ListenerKind::kAdmin: return "admin";
    case ListenerKind::kHealth: return "health";
    case ListenerKind::kStats: return "stats";
  }
  return "listener";
}

struct Worker {
  // One thread runs it, and only that thread touches its sockets (other threads only post to
  // it): the reactor's per-socket locking is skipped, the scheduler's kept for those posts.
  asio::io_context io{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  // Declared after io: destroyed first, while the io_context (and its sockets' reactor) lives.
  Http1Pool http1_pool{io.get_executor()};
  H2UpstreamPool h2_pool{io.get_executor()};
  Http1Parking parking{io.get_executor()};  // keep-alive HTTP/1.1 clients idle between requests
  std::thread thread;
  std::vector<std::unique_ptr<Acceptor>> acceptors;
  std::optional<TcpSeriesCache> tcp_series;  // this worker's handles on the TCP metrics
  std::vector<Acceptor*> captured;  // the outbound and inbound ones (closed first on drain)
};

}  // namespace

struct Server::Impl {
  ServerOptions options;
  ConfigStore& config;
  Logger& log;
  Registry metrics;
  Family<Counter>& opened = metrics.AddCounter("istio_tcp_connections_opened_total",
                                               "TCP connections opened", {"reporter", "destination_service"});
  Family<Counter>& closed = metrics.AddCounter("istio_tcp_connections_closed_total", "TCP connections closed",
                                               {"reporter", "destination_service", "response_flags"});
  Family<Counter>& sent = metrics.AddCounter("istio_tcp_sent_bytes_total", "Bytes sent to the downstream",
                                             {"reporter", "destination_service"});
  Family<Counter>& received = metrics.AddCounter("istio_tcp_received_bytes_total",
                                                 "Bytes received from the downstream", {"reporter", "destination_service"});
  std::vector<std::unique_ptr<Worker>> workers;
  std::array<uint16_t, 5> ports{};
  std::atomic<bool> serving{false};
  // Ready for traffic: serving, and configured (a snapshot accepted, from a file, the control
  // plane or the last one kept). Until then captured traffic passes through unrouted.
  bool Ready() const { return serving && config.accepted() > 0; }
  std::atomic<bool> stopping{false};
  std::atomic<bool> draining{false};
  std::atomic<int> active{0};
  std::unique_ptr<TokenBucket> inbound_limit;

  Impl(ServerOptions o, ConfigStore& c, Logger& l) : options(o), config(c), log(l) {
    if (o.inbound_rate_limit) inbound_limit = std::make_unique<TokenBucket>(o.inbound_rate_limit->per_second, o.inbound_rate_limit->burst);
  }

  Status Listen(Worker& w, ListenerKind kind, const std::string& address, uint16_t port, bool optional);
  Awaitable<void> AcceptLoop(Acceptor& acceptor, ListenerKind kind, Worker& worker);
  Awaitable<void> Captured(Socket downstream, bool inbound, Worker& worker);
  Awaitable<void> Admin(Socket s, ListenerKind kind);
  void StopAll();
};

Status Server::Impl::Listen(Worker& w, ListenerKind kind, const std::string& address, uint16_t port, bool optional) {
  boost::system::error_code ec;
  auto ip = asio::ip::make_address(address, ec);
  auto acceptor = std::make_unique<Acceptor>(w.io);
  tcp::endpoint ep(ip, port);
  // Each step's failure is this listener's, named: a TPROXY listener without IP_TRANSPARENT
  // would bind and then never see a redirected connection.
  const char* step = "socket";
  acceptor->open(ep.protocol(), ec);
  const int fd = acceptor->native_handle(), one = 1;
  auto set = [&](const char* what, int level, int name) {
    if (ec) return;
    step = what;
    if (setsockopt(fd, level, name, &one, sizeof one) != 0) ec.assign(errno, boost::system::system_category());
  };
  set("SO_REUSEADDR", SOL_SOCKET, SO_REUSEADDR);
  set("SO_REUSEPORT", SOL_SOCKET, SO_REUSEPORT);  // every worker accepts on its own socket; the kernel spreads connections
  if (ip.is_v6()) set("IPV6_V6ONLY", IPPROTO_IPV6, IPV6_V6ONLY);
  if (kind == ListenerKind::kInbound && options.tproxy) {
    if (ip.is_v6()) set("IPV6_TRANSPARENT", SOL_IPV6, IPV6_TRANSPARENT);
    else set("IP_TRANSPARENT", SOL_IP, IP_TRANSPARENT);
  }
  if (!ec) step = "bind", acceptor->bind(ep, ec);
  if (!ec) step = "listen", acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    if (optional) return Status::Ok();
    return Status::Error("cannot listen on " + EndpointString(ep) + ": " + step + ": " + ec.message());
  }
  ports[static_cast<size_t>(kind)] = acceptor->local_endpoint().port();
  asio::co_spawn(w.io, AcceptLoop(*acceptor, kind, w), LogEscaped(log, ListenerName(kind)));
  if (kind == ListenerKind::kOutbound || kind == ListenerKind::kInbound) w.captured.push_back(acceptor.get());
  w.acceptors.push_back(std::move(acceptor));
  return Status::Ok();
}

Awaitable<void> Server::Impl::AcceptLoop(Acceptor& acceptor, ListenerKind kind, Worker& worker) {
  const char* listener = ListenerName(kind);
  OnceEvery accept_warning, nodelay_warning;  // each failure kind logged at most once a minute per listener
  Timer pause(acceptor.get_executor());
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(kNoThrow);
    if (ec) {
      if (ec == asio::error::operation_aborted || stopping) co_return;
      // Out of descriptors or memory (EMFILE, ENFILE, ENOBUFS): the pending connection stays
      // queued, so accepting again at once would spin. The listener pauses, as HAProxy's does,
      // while connections in flight end and give descriptors back.
      if (accept_warning.Due()) {
        log.Warn("accept failed; the listener pauses 100 ms", {{"listener", listener}, {"error", ec.message()},
                                                                  {"since_last_warning", accept_warning.suppressed()}});
      }
      pause.expires_after(kAcceptPause);
      co_await pause.async_wait(kNoThrow);
      continue;
    }
    boost::system::error_code oec;
    socket.set_option(tcp::no_delay(true), oec);
    if (oec && nodelay_warning.Due()) {
      log.Warn("TCP_NODELAY refused on an accepted connection", {{"listener", listener}, {"error", oec.message()}});
    }
    auto ex = acceptor.get_executor();
    switch (kind) {
      case ListenerKind::kOutbound:
      case ListenerKind::kInbound:
        asio::co_spawn(ex, Captured(std::move(socket), kind == ListenerKind::kInbound, worker), LogEscaped(log, listener));
        break;
      default:
        asio::co_spawn(ex, Admin(std::move(socket), kind), LogEscaped(log, listener));
    }
  }
}

namespace {

// What the client sends first, read into `head` (bounded in bytes and time). Its own coroutine:
// the read buffer lives in this frame, gone once sniffing is over, not in the connection's.
Awaitable<Sniffed> SniffHead(Socket& downstream, std::string& head, std::chrono::milliseconds timeout) {
  Timer timer(downstream.get_executor());
  timer.expires_after(timeout);
  std::array<char, 4096> buf;
  Sniffed sniffed = Sniffed::kNeedMore;
  while (sniffed == Sniffed::kNeedMore && head.size() < 8192) {
    auto result = co_await (downstream.async_read_some(asio::buffer(buf), kNoThrowAwaitable) || timer.async_wait(kNoThrowAwaitable));
    if (result.index() == 1) break;  // the client waits for the server to speak first: TCP
    auto [rec, n] = std::get<0>(result);
    if (rec) break;
    head.append(buf.data(), n);
    sniffed = SniffProtocol(head);
  }
  co_return sniffed == Sniffed::kNeedMore ? Sniffed::kTcp : sniffed;
}

}  // namespace

Awaitable<void> Server::Impl::Captured(Socket downstream, bool inbound, Worker& worker) {
  auto start = std::chrono::steady_clock::now();
  ++active;
  struct Done {
    std::atomic<int>& n;
    ~Done() { --n; }
  } done{active};
  auto ex = downstream.get_executor();
  boost::system::error_code ec;
  tcp::endpoint peer = downstream.remote_endpoint(ec), local = downstream.local_endpoint(ec), original;
  if (!OriginalDestination(downstream, &original)) {
    if (!inbound || !options.tproxy) co_return;  // not a captured connection
    original = local;  // TPROXY keeps the destination as the socket's own address
  }
  // A connection made to the listener itself (not redirected) would loop back into it.
  if (original == local) co_return;

  const uint64_t table_generation = config.generation();  // before Current(): see FollowCurrentSnapshot
  std::shared_ptr<const RouteTable> table = config.Current();  // this connection's snapshot
  ResponseFlags flags;
  std::string service = "unknown", cluster_name;
  tcp::endpoint upstream_ep = original;
  auto connect_timeout = options.connect_timeout;  // the cluster's tcp.connectTimeout when it sets one
  config::Protocol declared = config::Protocol::kSniff;
  const VirtualHost* vh = nullptr;
  if (!inbound) {
    vh = table->ForDestination(original.address().to_string(), original.port());
    if (vh) {
      service = vh->service->hostname;
      declared = vh->port->protocol;
      cluster_name = "outbound|" + std::to_string(vh->port->port) + "||" + service;
      const Cluster* cluster = table->FindCluster(cluster_name);
      if (cluster && cluster->limits.connect_timeout) connect_timeout = *cluster->limits.connect_timeout;
      // Each worker thread draws from its own generator: nothing shared on the connection path.
      thread_local Rng rng{std::random_device{}()};
      // A TCP connection hashes on its source IP (the only key it has) when the policy hashes.
      std::optional<uint64_t> hash;
      if (cluster && cluster->lb == LbPolicy::kConsistentHash) hash = StableHash(peer.address().to_string());
      if (!cluster || cluster->lb != LbPolicy::kPassthrough) {  // PASSTHROUGH keeps the original destination
        const UpstreamEndpoint* e = cluster ? PickEndpoint(*cluster, hash, nullptr, rng, SteadyNowNs()) : nullptr;
        if (!e) {
          flags = ResponseFlag::kNoHealthyUpstream;
        } else {
          upstream_ep = ToEndpoint(*e);
        }
      }
    } else if (table->snapshot().mesh.outbound_traffic_policy == "REGISTRY_ONLY") {
      flags = ResponseFlag::kNoRouteFound;  // the destination is not in the registry
      cluster_name = "BlackHoleCluster";
    } else {
      cluster_name = "PassthroughCluster";
    }
  } else {
    cluster_name = "InboundPassthroughCluster";
    service = EndpointString(original);
  }
  const TcpSeriesCache::Series series = worker.tcp_series->For(inbound, service);
  series.opened->Inc();

  // Protocol: declared, or sniffed from what the client sends first (bounded wait). Under
  // REGISTRY_ONLY an unknown destination is still sniffed: an HTTP request may name a known
  // service by its authority, and anything else gets an HTTP answer instead of a reset.
  std::string head;
  Sniffed sniffed = Sniffed::kTcp;
  bool blackhole = flags.Has(ResponseFlag::kNoRouteFound);
  // A port declared http is still told apart from HTTP/2 prior knowledge (Istio's listeners
  // accept both on an http port). A known service is sniffed even when its default cluster has
  // no endpoint (UH for TCP): HTTP routes by VirtualService to subsets of their own.
  if ((flags.empty() || blackhole || vh) && (declared == config::Protocol::kSniff || declared == config::Protocol::kHttp)) {
    sniffed = co_await SniffHead(downstream, head, options.sniff_timeout);
  }
  // HTTP/1 is handled request by request: outbound to a known service (or any destination
  // under REGISTRY_ONLY, where the authority decides), inbound to the app.
  // HTTP/2 (prior knowledge) likewise, stream by stream.
  bool http1 = (declared == config::Protocol::kHttp && sniffed != Sniffed::kHttp2) || sniffed == Sniffed::kHttp1;
  bool http2 = declared == config::Protocol::kHttp2 || declared == config::Protocol::kGrpc || sniffed == Sniffed::kHttp2;
  if ((vh || blackhole || inbound) && (http1 || http2)) {
    HttpContext ctx{.table = table, .config = &config, .table_generation = table_generation, .host = vh, .original = original, .peer = peer, .log = &log, .inbound = inbound,
                    .inbound_limit = inbound ? inbound_limit.get() : nullptr, .draining = &draining,
                    .header_timeout = options.header_timeout, .connect_timeout = options.connect_timeout,
                    .http1_pool = &worker.http1_pool, .h2_pool = &worker.h2_pool};
    if (inbound) ctx.app_protocol = table->InboundProtocol(original.address().to_string(), original.port());
    if (http2) {
      co_await ServeHttp2(std::move(downstream), std::move(head), std::move(ctx));
    } else if (const Http1SessionEnd end = co_await ServeHttp1(downstream, std::move(head), ctx); end.parked) {
      // Idle between requests: the worker holds the socket, and nothing of this coroutine.
      worker.parking.Park(std::make_unique<ParkedHttp1>(std::move(downstream), std::move(ctx), series.closed_clean, &active),
                          end.idle_deadline);
      co_return;
    }
    series.closed_clean->Inc();
    co_return;
  }

  uint64_t up = 0, down = 0;
  Socket upstream(ex);
  if (flags.empty()) {
    switch (co_await ConnectUpstream(upstream, upstream_ep, inbound, connect_timeout)) {
      case ConnectResult::kOk: break;
      case ConnectResult::kFailed: flags = ResponseFlag::kUpstreamConnectionFailure; break;
      case ConnectResult::kTimedOut:
        flags = ResponseFlag::kUpstreamConnectionFailure | ResponseFlag::kUpstreamRetryLimitExceeded;
        break;
    }
  }
  if (flags.empty()) {
    if (!head.empty()) {
      auto [wec, wn] = co_await asio::async_write(upstream, asio::buffer(head), kNoThrow);
      up += wn;
      if (wec) flags = ResponseFlag::kUpstreamConnectionTermination;
    }
    if (flags.empty()) co_await (Pipe(downstream, upstream, up) && Pipe(upstream, downstream, down));
  }
  series.received->Inc(up);
  series.sent->Inc(down);
  const std::string flag_text = flags.ToString();
  worker.tcp_series->Closed(inbound, service, flag_text).Inc();
  log.Info("access", {{"listener", inbound ? "inbound" : "outbound"},
                      {"downstream", EndpointString(peer)},
                      {"original_dst", EndpointString(original)},
                      {"service", service},
                      {"cluster", cluster_name},
                      {"upstream", flags.empty() || flags == ResponseFlag::kUpstreamConnectionTermination ? EndpointString(upstream_ep) : ""},
                      {"protocol", SniffedName(sniffed)},
                      {"bytes_received", up},
                      {"bytes_sent", down},
                      {"response_flags", flag_text},
                      {"duration_ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::steady_clock::now() - start).count()},
                      {"config_version", table->snapshot().version}});
}

Awaitable<void> Server::Impl::Admin(Socket s, ListenerKind kind) {
  boost::beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(16 * 1024);
    parser.body_limit(64 * 1024);
    auto [ec, n] = co_await http::async_read(s, buffer, parser, kNoThrow);
    if (ec) co_return;
    auto& req = parser.get();
    http::response<http::string_body> res{http::status::ok, req.version()};
    res.set(http::field::content_type, "text/plain");
    std::string target(req.target());
    std::string path = target.substr(0, target.find('?'));
    bool quit = false;
    if (kind == ListenerKind::kHealth && path == "/healthz/ready") {
      const bool ready = Ready();
      res.result(ready ? http::status::ok : http::status::service_unavailable);
      res.body() = ready ? "ok\n" : serving ? "not ready: no config snapshot yet\n" : "not ready\n";
    } else if ((kind == ListenerKind::kStats || kind == ListenerKind::kAdmin) && path == "/stats/prometheus") {
      res.set(http::field::content_type, "text/plain; version=0.0.4");
      res.body() = metrics.Expose();
    } else if (kind == ListenerKind::kAdmin && path == "/ready") {
      res.result(serving ? http::status::ok : http::status::service_unavailable);
      res.body() = serving ? "LIVE\n" : draining ? "DRAINING\n" : "PRE_INITIALIZING\n";
    } else if (kind == ListenerKind::kAdmin && path == "/config_dump") {
      res.set(http::field::content_type, "application/json");
      nlohmann::json dump = {{"snapshot", config.Dump()},
                             {"accepted", config.accepted()},
                             {"refused", config.refused()}};
      res.body() = dump.dump(2) + "\n";
    } else if (kind == ListenerKind::kAdmin && path == "/memory") {
      res.set(http::field::content_type, "application/json");
      res.body() = MemoryReport().dump(2) + "\n";
    } else if (kind == ListenerKind::kAdmin && path == "/quitquitquit" && req.method() == http::verb::post) {
      res.body() = "OK\n";
      quit = true;
    } else if (kind == ListenerKind::kAdmin && path == "/logging" && req.method() == http::verb::post) {
      std::string level = target.find("level=") == std::string::npos ? "" : target.substr(target.find("level=") + 6);
      LogLevel parsed;
      if (ParseLogLevel(level, &parsed)) {
        log.set_level(parsed);
        res.body() = "level " + level + "\n";
      } else {
        res.result(http::status::bad_request);
        res.body() = "level must be one of debug, info, warn, error\n";
      }
    } else {
      res.result(http::status::not_found);
      res.body() = "not found\n";
    }
    res.keep_alive(req.keep_alive() && !quit);
    res.prepare_payload();
    auto [wec, wn] = co_await http::async_write(s, res, kNoThrow);
    if (quit) {
      log.Info("quitquitquit: stopping", nlohmann::json::object());
      StopAll();
      co_return;
    }
    if (wec || !res.keep_alive()) co_return;
  }
}

void Server::Impl::StopAll() {
  if (stopping.exchange(true)) return;
  serving = false;
  for (auto& w : workers) {
    asio::post(w->io, [w = w.get()] {
      for (auto& a : w->acceptors) {
        boost::system::error_code ignored;
        a->close(ignored);
      }
      w->parking.Shutdown();
      w->io.stop();
    });
  }
}

Server::Server(ServerOptions options, ConfigStore& config, Logger& log)
    : impl_(std::make_unique<Impl>(options, config, log)) {}

Server::~Server() {
  Stop();
  Wait();
}

Status Server::Start() {
  Impl& im = *impl_;
  int n = std::max(1, im.options.workers);
  for (int i = 0; i < n; ++i) {
    im.workers.push_back(std::make_unique<Worker>());
    im.workers.back()->tcp_series.emplace(TcpFamilies{im.opened, im.closed, im.sent, im.received});
    im.workers.back()->http1_pool.SetLogger(&im.log);
    im.workers.back()->h2_pool.SetLogger(&im.log);
  }
  // Each worker's write batching is set up now, so the log tells which way writes go.
  bool batched = true;
  for (auto& w : im.workers) batched = asio::use_service<BatchedSends>(w->io).batching() && batched;
  if (batched) im.log.Info("writes: batched through io_uring", {{"workers", n}});
  else im.log.Warn("writes: one sendmsg each (io_uring unavailable or TERN_IO_URING=off)", {{"workers", n}});
  const ServerOptions& o = im.options;
  // The captured listeners on every worker (the first bind picks an ephemeral port for the rest).
  for (auto [kind, requested] : {std::pair{ListenerKind::kOutbound, o.outbound_port},
                                 std::pair{ListenerKind::kInbound, o.inbound_port}}) {
    for (auto& w : im.workers) {
      uint16_t port = requested ? requested : im.ports[static_cast<size_t>(kind)];
      Status s = im.Listen(*w, kind, "0.0.0.0", port, false);
      if (!s.ok()) return s;
      s = im.Listen(*w, kind, "::", im.ports[static_cast<size_t>(kind)], true);  // IPv6 when the pod has it
      if (!s.ok()) return s;
    }
  }
  Worker& first = *im.workers[0];
  for (auto [kind, address, port] : {std::tuple{ListenerKind::kAdmin, "127.0.0.1", o.admin_port},
                                     std::tuple{ListenerKind::kHealth, "0.0.0.0", o.health_port},
                                     std::tuple{ListenerKind::kStats, "0.0.0.0", o.stats_port}}) {
    Status s = im.Listen(first, kind, address, port, false);
    if (!s.ok()) return s;
  }
  for (auto& w : im.workers) {
    w->thread = std::thread([w = w.get()] {
      auto guard = asio::make_work_guard(w->io);
      w->io.run();
    });
  }
  im.serving = true;
  return Status::Ok();
}

void Server::Drain() {
  Impl& im = *impl_;
  if (im.draining.exchange(true)) return;
  im.serving = false;
  for (auto& w : im.workers) {
    asio::post(w->io, [w = w.get()] {
      for (auto* a : w->captured) {
        boost::system::error_code ignored;
        a->close(ignored);
      }
    });
  }
}

int Server::active_connections() const { return impl_->active; }

void Server::Stop() { impl_->StopAll(); }

void Server::Wait() {
  for (auto& w : impl_->workers) {
    if (w->thread.joinable()) w->thread.join();
  }
}

uint16_t Server::port(ListenerKind kind) const { return impl_->ports[static_cast<size_t>(kind)]; }

bool Server::stopping() const { return impl_->stopping; }
bool Server::ready() const { return impl_->Ready(); }

}  // namespace tern::proxy
