#include "proxy/discovery_client.h"

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "core/base/files.h"

#include "proxy/socket_deadline.h"

namespace tern::proxy {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

namespace {
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr auto kConnectTimeout = std::chrono::seconds(10);
constexpr auto kFirstBackoff = std::chrono::milliseconds(200);
constexpr auto kMaxBackoff = std::chrono::seconds(15);
}  // namespace

struct DiscoveryClient::Impl {
  Impl(DiscoveryClientOptions o, const Logger& l) : options(std::move(o)), log(l) {
    size_t colon = options.address.rfind(':');
    host = options.address.substr(0, colon);
    port = options.address.substr(colon + 1);
    if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  }

  // A TLS connection to ternd: the context first (the stream's SSL object is made from it).
  struct TlsConnection {
    TlsConnection(asio::io_context& io, ssl::context&& context) : tls(std::move(context)), stream(io, tls) {}
    ssl::context tls;
    ssl::stream<tcp::socket> stream;
  };

  // Resolves, connects and completes TLS (ternd verified against the mesh root and its name
  // against the address's host) within kConnectTimeout; null and `why` when it could not.
  asio::awaitable<std::unique_ptr<TlsConnection>> Connect(std::string* why) {
    ssl::context tls(ssl::context::tls_client);
    error_code ec;
    tls.load_verify_file(options.ca_file, ec);
    if (ec) {
      *why = "the mesh root " + options.ca_file + ": " + ec.message();
      co_return nullptr;
    }
    tls.set_verify_mode(ssl::verify_peer);
    tls.set_verify_callback(ssl::host_name_verification(host));
    tcp::resolver resolver(io);
    auto [rec, found] = co_await resolver.async_resolve(host, port, kTuple);
    if (rec) {
      *why = "resolving " + host + ": " + rec.message();
      co_return nullptr;
    }
    auto c = std::make_unique<TlsConnection>(io, std::move(tls));
    auto& socket = c->stream.next_layer();
    SocketDeadline deadline(socket, kConnectTimeout);
    auto [cec, at] = co_await asio::async_connect(socket, found, kTuple);
    if (cec) {
      *why = "connecting to " + options.address + ": " + (deadline.expired() ? "timed out" : cec.message());
      co_return nullptr;
    }
    socket.set_option(tcp::no_delay(true), ec);
    // ternd may send nothing for hours: keepalive tells a dead peer from a quiet one.
    socket.set_option(asio::socket_base::keep_alive(true), ec);
    int idle = 30, interval = 10, count = 3;
    setsockopt(socket.native_handle(), IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(socket.native_handle(), IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
    setsockopt(socket.native_handle(), IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
    if (!SSL_set_tlsext_host_name(c->stream.native_handle(), host.c_str())) {
      *why = "SNI " + host + " refused by OpenSSL";
      co_return nullptr;
    }
    auto [hec] = co_await c->stream.async_handshake(ssl::stream_base::client, kTuple);
    if (hec) {
      *why = "TLS with " + options.address + ": " + (deadline.expired() ? "timed out" : hec.message());
      co_return nullptr;
    }
    co_return c;
  }

  // "Authorization: Bearer <token>\r\n" from the token file as it is now; "" without one.
  std::string Authorization() const {
    if (options.token_file.empty()) return "";
    auto token = ReadFile(options.token_file);
    if (!token.ok()) return "";
    std::string t = *token;
    while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.pop_back();
    if (t.empty() || t.find_first_of("\r\n") != std::string::npos) return "";
    return "Authorization: Bearer " + t + "\r\n";
  }

  // Tells ternd what became of a snapshot, on a connection of its own (the stream's carries
  // only ternd's answer). Best effort: the next snapshot is acknowledged again.
  asio::awaitable<void> Acknowledge(std::string version, std::string error) {
    std::string why;
    auto c = co_await Connect(&why);
    if (!c) co_return;
    SocketDeadline deadline(c->stream.next_layer(), kConnectTimeout);
    nlohmann::json ack = {{"namespace", options.namespace_}, {"pod", options.pod}, {"version", version}, {"error", error}};
    std::string body = ack.dump();
    std::string request = "POST /v1/ack HTTP/1.1\r\nHost: " + host + "\r\nContent-Type: application/json\r\nContent-Length: " +
                          std::to_string(body.size()) + "\r\n" + Authorization() + "Connection: close\r\n\r\n" + body;
    auto [wec, wn] = co_await asio::async_write(c->stream, asio::buffer(request), kTuple);
    if (wec) co_return;
    boost::beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    co_await http::async_read(c->stream, buffer, parser, kTuple);
  }

  // One stream: how it ended.
  asio::awaitable<std::string> Session(bool* delivered) {
    std::string why;
    auto conn = co_await Connect(&why);
    if (!conn) co_return why;
    auto& stream = conn->stream;
    SocketDeadline deadline(stream.next_layer(), kConnectTimeout);  // until ternd's answer begins
    std::string request = "GET /v1/snapshots?namespace=" + options.namespace_ + "&pod=" + options.pod +
                          " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: tern-proxy\r\nAccept: application/x-ndjson\r\n" +
                          Authorization() + "\r\n";
    auto [wec, wn] = co_await asio::async_write(stream, asio::buffer(request), kTuple);
    if (wec) co_return "sending the request: " + wec.message();
    boost::beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    // The stream lasts as long as the proxy: no limit on its whole body (Beast counts every
    // chunk against one), a limit on each snapshot in it (below).
    parser.body_limit(boost::none);
    auto [hrec, hn] = co_await http::async_read_header(stream, buffer, parser, kTuple);
    deadline.Disarm();  // connected: the stream has no deadline
    if (hrec) co_return "reading the answer: " + hrec.message();
    if (parser.get().result_int() != 200) {
      co_await http::async_read(stream, buffer, parser, kTuple);  // the reason, if it comes
      co_return "ternd answered " + std::to_string(parser.get().result_int()) + ": " + parser.get().body();
    }
    // Each line of the chunked body is one snapshot.
    std::string line;
    std::string problem;
    auto on_chunk = [&](std::uint64_t, std::string_view data, error_code& e) -> size_t {
      const size_t size = data.size();
      for (size_t eol; (eol = data.find('\n')) != std::string_view::npos; data.remove_prefix(eol + 1)) {
        line.append(data.substr(0, eol));
        if (!line.empty()) Apply(line);
        *delivered = true;
        line.clear();
      }
      line.append(data);
      if (line.size() > options.max_snapshot_bytes) {
        problem = "a snapshot over " + std::to_string(options.max_snapshot_bytes) + " bytes";
        e = http::error::body_limit;
      }
      return size;
    };
    parser.on_chunk_body(on_chunk);
    while (!parser.is_done()) {
      auto [r, n] = co_await http::async_read_some(stream, buffer, parser, kTuple);
      if (r) co_return problem.empty() ? "the stream ended: " + r.message() : problem;
    }
    co_return "ternd ended the stream";
  }

  void Apply(const std::string& text) {
    std::string version;
    Status s = options.apply(text, &version);
    if (!s.ok()) {
      log.Error("snapshot from ternd refused; the last good one stays", {{"error", s.message()}});
      auto doc = nlohmann::json::parse(text, nullptr, false);  // its version, to say which was refused
      if (doc.is_object() && doc.contains("version") && doc["version"].is_string()) version = doc["version"];
    }
    if (!version.empty()) asio::co_spawn(io, Acknowledge(version, s.ok() ? "" : s.message()), asio::detached);
  }

  asio::awaitable<void> Run() {
    std::mt19937_64 rng{std::random_device{}()};
    auto backoff = std::chrono::milliseconds(kFirstBackoff);
    for (int attempt = 1;; ++attempt) {
      bool delivered = false;
      std::string why = co_await Session(&delivered);
      if (stopping) co_return;
      if (delivered) backoff = kFirstBackoff, attempt = 1;
      // Jittered: half the back-off plus a random part of it, so proxies do not reconnect in step.
      auto wait = backoff / 2 + std::chrono::milliseconds(rng() % (backoff.count() / 2 + 1));
      log.Warn("config stream down; keeping the last snapshot", {{"address", options.address}, {"reason", why},
                                                                 {"attempt", attempt}, {"retry_in_ms", wait.count()}});
      asio::steady_timer pause(io, wait);
      co_await pause.async_wait(kTuple);
      backoff = std::min<std::chrono::milliseconds>(backoff * 2, kMaxBackoff);
    }
  }

  DiscoveryClientOptions options;
  const Logger& log;
  std::string host, port;  // of options.address
  asio::io_context io{1};
  std::thread thread;
  std::atomic<bool> stopping{false};
};

DiscoveryClient::DiscoveryClient(DiscoveryClientOptions options, const Logger& log)
    : impl_(std::make_unique<Impl>(std::move(options), log)) {}

DiscoveryClient::~DiscoveryClient() { Stop(); }

void DiscoveryClient::Start() {
  Impl& im = *impl_;
  asio::co_spawn(im.io, im.Run(), asio::detached);
  im.thread = std::thread([&im] { im.io.run(); });
}

void DiscoveryClient::Stop() {
  impl_->stopping = true;
  impl_->io.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace tern::proxy
