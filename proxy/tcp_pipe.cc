#include "proxy/tcp_pipe.h"

#include <algorithm>

#include <array>
#include <boost/asio/buffer.hpp>
#include <boost/asio/write.hpp>

#include "proxy/draining_read.h"

namespace tern::proxy {

namespace asio = boost::asio;

Awaitable<void> Pipe(Socket& from, Socket& to, uint64_t& bytes) {
  std::array<char, 16384> buf;
  for (;;) {
    // At once first: a FIN that came with the last bytes raises no edge (draining_read.h), and
    // the other side must hear of it.
    boost::system::error_code ec;
    size_t n = 0;
    if (!ReadNow(from, asio::buffer(buf), ec, n)) std::tie(ec, n) = co_await from.async_read_some(DrainingBuffer(asio::buffer(buf)), kNoThrow);
    if (ec) break;
    auto [wec, wn] = co_await asio::async_write(to, asio::buffer(buf.data(), n), kNoThrow);
    if (wec) break;
    bytes += wn;
  }
  boost::system::error_code ignored;
  to.shutdown(Socket::shutdown_send, ignored);
}

Awaitable<void> IdleWatch(std::function<uint64_t()> progress, std::chrono::milliseconds idle,
                          std::function<void()> end_tunnel) {
  using Clock = std::chrono::steady_clock;
  const auto period = std::clamp<std::chrono::milliseconds>(idle / 4, std::chrono::milliseconds(50), std::chrono::seconds(30));
  Timer timer(co_await boost::asio::this_coro::executor);
  uint64_t seen = progress();
  auto last_progress = Clock::now();
  for (;;) {
    timer.expires_after(period);
    auto [ec] = co_await timer.async_wait(kNoThrow);
    if (ec) co_return;  // cancelled: the tunnel ended first
    if (const uint64_t now_moved = progress(); now_moved != seen) {
      seen = now_moved;
      last_progress = Clock::now();
    } else if (Clock::now() - last_progress >= idle) {
      end_tunnel();
      co_return;
    }
  }
}

}  // namespace tern::proxy
