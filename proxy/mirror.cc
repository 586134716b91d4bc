#include "proxy/mirror.h"

#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include "proxy/h2_fields.h"
#include "proxy/http_context.h"
#include "proxy/route_table.h"
#include "proxy/upstream_connect.h"

namespace tern::proxy {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;

namespace {

thread_local int mirrors_in_flight = 0;  // per worker: each worker is one thread

Awaitable<void> Mirror(tcp::endpoint to, std::string request, std::chrono::milliseconds timeout) {
  Socket s(co_await asio::this_coro::executor);
  if (co_await ConnectUpstream(s, to, false, timeout) == ConnectResult::kOk) {
    auto exchange = [&]() -> Awaitable<void> {
      auto [wec, wn] = co_await asio::async_write(s, asio::buffer(request), kNoThrow);
      if (wec) co_return;
      boost::beast::flat_buffer buf;
      http::response_parser<http::string_body> p;
      p.body_limit(1 << 20);
      co_await http::async_read(s, buf, p, kNoThrow);
    };
    Timer timer(s.get_executor());
    timer.expires_after(timeout);
    co_await (exchange() || timer.async_wait(kNoThrowAwaitable));
  }
  --mirrors_in_flight;
}

}  // namespace

std::string ShadowRequest(std::string_view method, std::string_view target, std::string_view authority,
                          const std::vector<std::pair<std::string_view, std::string_view>>& fields, std::string_view body) {
  std::string host(authority);
  size_t colon = host.rfind(':');
  if (colon != std::string::npos && host.find(']', colon) == std::string::npos) host.insert(colon, "-shadow");
  else host += "-shadow";
  std::string out = std::string(method) + " " + std::string(target) + " HTTP/1.1\r\nhost: " + host + "\r\n";
  for (const auto& [name, value] : fields) {
    std::string n = AsciiLower(name);
    if (n.empty() || n[0] == ':' || n == "host" || n == "content-length" || IsHopByHop(n)) continue;
    out += n + ": " + std::string(value) + "\r\n";
  }
  if (!body.empty()) out += "content-length: " + std::to_string(body.size()) + "\r\n";
  out += "connection: close\r\n\r\n";
  out += body;
  return out;
}

bool SendMirror(const Executor& ex, const Cluster& mirror, uint64_t random, std::string request,
                std::chrono::milliseconds timeout) {
  if (mirrors_in_flight >= kMaxMirrorsInFlight || mirror.endpoints.empty()) return false;
  const UpstreamEndpoint& e = mirror.endpoints[random % mirror.endpoints.size()];
  tcp::endpoint to = ToEndpoint(e);
  ++mirrors_in_flight;
  asio::co_spawn(ex, Mirror(to, std::move(request), timeout), asio::detached);
  return true;
}

}  // namespace tern::proxy
