#include "proxy/status_agent.h"

#include <boost/asio.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <nlohmann/json.hpp>
#include <thread>

#include "proxy/socket_deadline.h"

namespace tern::proxy {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
// The kubelet's probes come on short connections; one that idles or trickles is cut.
constexpr auto kRequestTimeout = std::chrono::seconds(10);
}  // namespace

struct StatusAgent::Impl {
  Impl(StatusAgentOptions o, const Logger& l) : options(std::move(o)), log(l) {}

  asio::awaitable<void> Accept() {
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(kTuple);
      if (ec) {
        if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
        asio::steady_timer pause(io, std::chrono::milliseconds(100));  // out of descriptors: wait
        co_await pause.async_wait(kTuple);
        continue;
      }
      asio::co_spawn(io, Serve(std::move(socket)), asio::detached);
    }
  }

  asio::awaitable<void> Serve(tcp::socket socket) {
    SocketDeadline deadline(socket);
    boost::beast::flat_buffer buffer;
    for (;;) {
      // The request must come whole within the timeout (the probe itself has its own).
      deadline.Arm(kRequestTimeout);
      http::request_parser<http::empty_body> parser;
      parser.header_limit(16 * 1024);
      auto [rec, rn] = co_await http::async_read(socket, buffer, parser, kTuple);
      deadline.Disarm();
      if (rec) co_return;
      const auto& req = parser.get();
      std::string target(req.target());
      std::string path = target.substr(0, target.find('?'));
      http::response<http::string_body> res{http::status::ok, req.version()};
      res.set(http::field::content_type, "text/plain");
      if (req.method() != http::verb::get && req.method() != http::verb::head) {
        res.result(http::status::method_not_allowed);
        res.body() = "only GET\n";
      } else if (path == "/healthz/ready") {
        const bool ready = options.ready && options.ready();
        res.result(ready ? http::status::ok : http::status::service_unavailable);
        res.body() = ready ? "ok\n" : "not ready\n";
      } else if (auto probe = options.probers.find(path); probe != options.probers.end()) {
        ProbeOutcome outcome = co_await RunAppProbe(probe->second, options.app);
        res.result(outcome.status);
        res.body() = outcome.detail + "\n";
        if (outcome.status >= 400) log.Warn("app probe failed", {{"path", path}, {"status", outcome.status}, {"detail", outcome.detail}});
      } else if (path.rfind("/app-health/", 0) == 0 || path.rfind("/app-lifecycle/", 0) == 0) {
        res.result(http::status::not_found);
        res.body() = "no probe " + path + " in ISTIO_KUBE_APP_PROBERS\n";
      } else {
        res.result(http::status::not_found);
        res.body() = "not found\n";
      }
      res.keep_alive(req.keep_alive());
      res.prepare_payload();
      deadline.Arm(kRequestTimeout);
      auto [wec, wn] = co_await http::async_write(socket, res, kTuple);
      deadline.Disarm();
      if (wec || !res.keep_alive()) co_return;
    }
  }

  StatusAgentOptions options;
  const Logger& log;
  asio::io_context io{1};
  tcp::acceptor acceptor{io};
  std::thread thread;
};

StatusAgent::StatusAgent(StatusAgentOptions options, const Logger& log)
    : impl_(std::make_unique<Impl>(std::move(options), log)) {}

StatusAgent::~StatusAgent() { Stop(); }

Status StatusAgent::Start() {
  Impl& im = *impl_;
  boost::system::error_code ec;
  auto address = asio::ip::make_address(im.options.address, ec);
  if (ec) return Status::Error("status port address \"" + im.options.address + "\": " + ec.message());
  tcp::endpoint at(address, im.options.port);
  im.acceptor.open(at.protocol(), ec);
  if (!ec) im.acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) im.acceptor.bind(at, ec);
  if (!ec) im.acceptor.listen(128, ec);
  if (ec) return Status::Error("status port " + std::to_string(im.options.port) + ": " + ec.message());
  asio::co_spawn(im.io, im.Accept(), asio::detached);
  im.thread = std::thread([&im] { im.io.run(); });
  return Status::Ok();
}

void StatusAgent::Stop() {
  Impl& im = *impl_;
  im.io.stop();
  if (im.thread.joinable()) im.thread.join();
}

uint16_t StatusAgent::port() const { return impl_->acceptor.local_endpoint().port(); }

}  // namespace tern::proxy
