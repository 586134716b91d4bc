#include "proxy/tcp_pipe.h"

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

}  // namespace tern::proxy
