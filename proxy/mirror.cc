#include "proxy/mirror.h"

#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include "proxy/upstream_connect.h"

namespace tern::proxy {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;

namespace {

thread_local int mirrors_in_flight = 0;  // per worker: each worker is one thread

asio::awaitable<void> Mirror(tcp::endpoint to, std::string request, std::chrono::milliseconds timeout) {
  constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
  tcp::socket s(co_await asio::this_coro::executor);
  if (co_await ConnectUpstream(s, to, false, timeout) == ConnectResult::kOk) {
    auto exchange = [&]() -> asio::awaitable<void> {
      auto [wec, wn] = co_await asio::async_write(s, asio::buffer(request), kNoThrow);
      if (wec) co_return;
      boost::beast::flat_buffer buf;
      http::response_parser<http::string_body> p;
      p.body_limit(1 << 20);
      co_await http::async_read(s, buf, p, kNoThrow);
    };
    asio::steady_timer timer(s.get_executor());
    timer.expires_after(timeout);
    co_await (exchange() || timer.async_wait(kNoThrow));
  }
  --mirrors_in_flight;
}

}  // namespace

bool SendMirror(const asio::any_io_executor& ex, const tcp::endpoint& to, std::string request, std::chrono::milliseconds timeout) {
  if (mirrors_in_flight >= kMaxMirrorsInFlight) return false;
  ++mirrors_in_flight;
  asio::co_spawn(ex, Mirror(to, std::move(request), timeout), asio::detached);
  return true;
}

}  // namespace tern::proxy
