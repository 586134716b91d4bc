// Fuzzes whole proxy sessions, not only the parsers: a fuzzed client byte stream goes to a real
// Http1Session or Http2Session (ServeHttp1 / ServeHttp2 over loopback TCP, on one io_context as
// a worker runs them), routed by a snapshot with retries, a per-try timeout and a route timeout
// to an in-process upstream whose behaviour per request is fuzzed too (answers, chunks, resets,
// garbage, a close after the head, a slow or a missing answer, 100-continue). Outbound or
// inbound, by the input's first byte. The session must end once its client is gone, without a
// crash, a sanitizer report, an escaped exception or a hang (abort after 3 s).
//
// Input: [mode] [4 upstream behaviours] [client bytes...]
//   mode bit 0: HTTP/2 client (the bytes follow the client preface), else HTTP/1.1 (fixed in
//               the session_fuzz_h1 and session_fuzz_h2 builds of this file)
//   mode bit 1: inbound (to the "app", no retries), else outbound through the route
//   mode bit 2: the client's bytes go in two writes (split at mode >> 3 of the length), else one
#include <sys/socket.h>

#include <boost/asio.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>

#include "core/config/snapshot.h"
#include "core/log/logger.h"
#include "proxy/asio_types.h"
#include "proxy/h2_upstream_pool.h"
#include "proxy/http1_pool.h"
#include "proxy/http1_session.h"
#include "proxy/http2_session.h"
#include "proxy/http_context.h"
#include "proxy/route_table.h"

namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace std::chrono_literals;
using tern::proxy::Awaitable;
using tern::proxy::kNoThrow;
using tern::proxy::Socket;
using tern::proxy::Timer;

std::string SnapshotFor(uint16_t upstream_port) {
  const std::string port = std::to_string(upstream_port);
  return "apiVersion: tern.dev/v1alpha1\nkind: ProxySnapshot\nversion: fuzz\n"
         "workload: {name: web-1, namespace: my-app, labels: {app: web}}\n"
         "services:\n"
         "- {hostname: product-service.my-app.svc.cluster.local, clusterIPs: [10.96.0.20], ports: [{name: http, port: 8080}]}\n"
         "- {hostname: web.my-app.svc.cluster.local, clusterIPs: [10.96.0.30], ports: [{name: http, port: " + port + "}]}\n"
         "endpoints:\n"
         "- {service: product-service.my-app.svc.cluster.local, address: 127.0.0.1, ports: {http: " + port + "}}\n"
         "- {service: web.my-app.svc.cluster.local, address: 127.0.0.1, ports: {http: " + port + "}}\n"
         "resources:\n"
         "- apiVersion: networking.istio.io/v1\n  kind: VirtualService\n  metadata: {name: product-service, namespace: my-app}\n"
         "  spec:\n    hosts: [product-service]\n    http:\n"
         "    - timeout: 150ms\n      retries: {attempts: 2, perTryTimeout: 60ms, retryOn: \"5xx,reset,connect-failure\"}\n"
         "      route: [{destination: {host: product-service}}]\n";
}

// What the upstream does with a request (a behaviour byte, modulo 8).
enum Behaviour : uint8_t { kAnswer, kChunked, kReset, kGarbage, kCloseAfterHead, kSlow, kNoAnswer, kContinue };

struct Harness {
  asio::io_context io;
  tern::Logger log{2, tern::LogLevel::kOff};
  tern::proxy::Http1Pool http1{io.get_executor()};
  tern::proxy::H2UpstreamPool h2{io.get_executor()};
  tern::proxy::Acceptor front{io.get_executor(), tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};
  tern::proxy::Acceptor back{io.get_executor(), tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};
  std::shared_ptr<const tern::proxy::RouteTable> table;
  uint8_t script[4] = {};
  unsigned upstream_requests = 0;

  Harness() {
    auto snapshot = tern::config::ParseSnapshot(SnapshotFor(back.local_endpoint().port()));
    if (!snapshot.ok()) std::abort();
    auto built = tern::proxy::RouteTable::Build(*snapshot);
    if (!built.ok()) std::abort();
    table = *built;
    asio::co_spawn(io, AcceptUpstreams(), asio::detached);
  }

  Awaitable<void> AcceptUpstreams() {
    for (;;) {
      auto [ec, s] = co_await back.async_accept(kNoThrow);
      if (ec) co_return;
      asio::co_spawn(io, Upstream(std::move(s)), asio::detached);
    }
  }

  // Answers each request head it reads by the script; reads on so a request body never blocks
  // the proxy's writes.
  Awaitable<void> Upstream(Socket s) {
    std::string in;
    char buf[8192];
    Timer timer(io.get_executor());
    for (;;) {
      auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), kNoThrow);
      if (ec) co_return;
      in.append(buf, n);
      for (size_t end; (end = in.find("\r\n\r\n")) != std::string::npos;) {
        in.erase(0, end + 4);
        const auto what = static_cast<Behaviour>(script[upstream_requests++ % 4] % 8);
        std::string out;
        switch (what) {
          case kAnswer: out = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"; break;
          case kChunked: out = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n3\r\nyes\r\n0\r\n\r\n"; break;
          case kGarbage: out = "\x16\x03\x01 no http\r\n\r\n"; break;
          case kCloseAfterHead: out = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"; break;
          case kContinue: out = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"; break;
          case kSlow:
            timer.expires_after(20ms);
            co_await timer.async_wait(kNoThrow);
            out = "HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n";
            break;
          case kReset:
          case kNoAnswer: break;
        }
        if (what == kReset) {
          s.set_option(asio::socket_base::linger(true, 0));
          co_return;
        }
        if (what == kNoAnswer) {  // bounded: the connection ends after a while
          timer.expires_after(200ms);
          co_await timer.async_wait(kNoThrow);
          co_return;
        }
        auto [wec, wn] = co_await asio::async_write(s, asio::buffer(out), kNoThrow);
        if (wec || what == kGarbage || what == kCloseAfterHead) co_return;
      }
    }
  }

  // Runs the loop until `done` or `limit` passes.
  void RunUntil(const bool& done, std::chrono::milliseconds limit) {
    auto until = std::chrono::steady_clock::now() + limit;
    while (!done && std::chrono::steady_clock::now() < until) io.run_one_for(10ms);
  }
};

Harness& TheHarness() {
  static Harness* h = new Harness();  // lives for the process: its sockets' pools are reused
  return *h;
}

Awaitable<void> Serve(bool http2, Socket server, tern::proxy::HttpContext ctx) {
  if (http2) {
    co_await tern::proxy::ServeHttp2(std::move(server), "", std::move(ctx));
    co_return;
  }
  // A session that parks (its client idles) is started again once the client sends (or closes),
  // as the worker's parking does.
  for (;;) {
    const tern::proxy::Http1SessionEnd end = co_await tern::proxy::ServeHttp1(server, "", ctx);
    if (!end.parked) break;
    auto [ec] = co_await server.async_wait(Socket::wait_read, boost::asio::as_tuple(boost::asio::deferred));
    if (ec) break;
  }
}

// The client: its bytes in one or two writes (the first `first` of them), its write side
// closed, then it reads to the end.
asio::awaitable<void> Talk(tcp::socket& client, const std::string& bytes, size_t first) {
  boost::system::error_code ec;
  co_await asio::async_write(client, asio::buffer(bytes.data(), first), asio::redirect_error(asio::use_awaitable, ec));
  if (!ec && first < bytes.size()) {
    co_await asio::async_write(client, asio::buffer(bytes.data() + first, bytes.size() - first),
                               asio::redirect_error(asio::use_awaitable, ec));
  }
  client.shutdown(tcp::socket::shutdown_send, ec);
  char buf[16384];
  while (!ec) co_await client.async_read_some(asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 5 || size > 64 * 1024) return 0;
  Harness& h = TheHarness();
  const uint8_t mode = data[0];
#if defined(TERN_SESSION_FUZZ_HTTP2)  // the build's two targets, one per client protocol
  const bool http2 = TERN_SESSION_FUZZ_HTTP2;
#else
  const bool http2 = mode & 1;
#endif
  const bool inbound = mode & 2, split = mode & 4;
  for (int i = 0; i < 4; ++i) h.script[i] = data[1 + i];
  std::string bytes(reinterpret_cast<const char*>(data + 5), size - 5);
  if (http2) bytes.insert(0, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

  // A client socket per input, closed with a reset: tens of thousands of runs a minute would
  // otherwise fill loopback's port range with TIME_WAIT.
  tcp::socket client(h.io);
  boost::system::error_code cec;
  client.connect(h.front.local_endpoint(), cec);
  if (cec) return 0;  // not an input's doing
  client.set_option(asio::socket_base::linger(true, 0), cec);
  Socket server = h.front.accept(cec);
  if (cec) return 0;

  tern::proxy::HttpContext ctx{.table = h.table, .original = {}, .peer = client.local_endpoint(), .log = &h.log,
                               .inbound = inbound, .header_timeout = 300ms, .connect_timeout = 100ms,
                               .http1_pool = &h.http1, .h2_pool = &h.h2};
  if (inbound) {
    ctx.original = h.back.local_endpoint();  // the app
    ctx.app_protocol = h.table->InboundProtocol("127.0.0.1", ctx.original.port());
  } else {
    ctx.original = tcp::endpoint(asio::ip::make_address("10.96.0.20"), 8080);
    ctx.host = h.table->ForDestination("10.96.0.20", 8080);
  }
  bool session_done = false, client_done = false;
  std::exception_ptr failure;
  asio::co_spawn(h.io, Serve(http2, std::move(server), std::move(ctx)), [&](std::exception_ptr e) {
    failure = e;
    session_done = true;
  });
  size_t first = split ? std::min(bytes.size(), static_cast<size_t>(mode >> 3) * bytes.size() / 32) : bytes.size();
  asio::co_spawn(h.io, Talk(client, bytes, first), [&](std::exception_ptr) { client_done = true; });

  h.RunUntil(session_done, 1500ms);
  if (!session_done) {  // a client that stays for its answer: it leaves
    boost::system::error_code ignored;
    client.close(ignored);
    h.RunUntil(session_done, 3000ms);
    if (!session_done) {
      std::fprintf(stderr, "session_fuzz: the session did not end 3 s after its client left\n");
      std::abort();
    }
  }
  if (failure) std::rethrow_exception(failure);  // an exception escaped the session: a finding
  boost::system::error_code ignored;
  client.close(ignored);
  h.RunUntil(client_done, 1000ms);
  return 0;
}
