#include "proxy/upstream_connect.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <boost/asio.hpp>
#include <cerrno>
#include <cstring>
#include <string>
#include <boost/asio/experimental/awaitable_operators.hpp>

namespace tern::proxy {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;

Awaitable<ConnectResult> ConnectUpstream(Socket& socket, const tcp::endpoint& to, bool from_passthrough_address,
                                               std::chrono::milliseconds timeout) {
  boost::system::error_code ec;
  socket.open(to.protocol(), ec);
  if (!ec && from_passthrough_address) {
    // The address need not be configured on an interface: FREEBIND lets the bind succeed.
    const int fd = socket.native_handle(), one = 1;
    const int freebind = to.address().is_v6() ? setsockopt(fd, SOL_IPV6, IPV6_FREEBIND, &one, sizeof one)
                                              : setsockopt(fd, SOL_IP, IP_FREEBIND, &one, sizeof one);
    // Every connection to the app comes from this one address: its source port is chosen at
    // connect(), by the whole 4-tuple, not at bind() against every destination at once (which
    // spends the pod's port range per address and fails connects to the app at once, UF).
    // IPv6 sockets take this IPv4-level option too.
    const int late_port = setsockopt(fd, SOL_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (freebind != 0 || late_port != 0) ec = boost::system::error_code(errno, boost::system::system_category());
    if (!ec) socket.bind(tcp::endpoint(asio::ip::make_address(to.address().is_v6() ? "::6" : "127.0.0.6"), 0), ec);
  }
  if (ec) co_return ConnectResult::kFailed;
  Timer timer(socket.get_executor());
  timer.expires_after(timeout);
  auto result = co_await (socket.async_connect(to, kNoThrowAwaitable) || timer.async_wait(kNoThrowAwaitable));
  if (result.index() == 1) {
    socket.close(ec);
    co_return ConnectResult::kTimedOut;
  }
  if (std::get<0>(std::get<0>(result))) {
    socket.close(ec);
    co_return ConnectResult::kFailed;
  }
  socket.set_option(tcp::no_delay(true), ec);
  co_return ConnectResult::kOk;
}

Status ApplyKeepalive(Socket& s, const istio::TcpKeepalive& ka) {
  const int fd = s.native_handle();
  auto set = [fd](const char* what, int level, int name, int value) -> Status {
    if (setsockopt(fd, level, name, &value, sizeof value) == 0) return Status::Ok();
    return Status::Error(std::string("tcpKeepalive: ") + what + "=" + std::to_string(value) + ": " + std::strerror(errno));
  };
  auto seconds = [](const istio::Duration& d) {
    return static_cast<int>(std::max<int64_t>(1, std::chrono::duration_cast<std::chrono::seconds>(d).count()));
  };
  if (Status st = set("SO_KEEPALIVE", SOL_SOCKET, SO_KEEPALIVE, 1); !st.ok()) return st;
  if (ka.probes) {
    if (Status st = set("TCP_KEEPCNT", IPPROTO_TCP, TCP_KEEPCNT, static_cast<int>(*ka.probes)); !st.ok()) return st;
  }
  if (ka.time) {
    if (Status st = set("TCP_KEEPIDLE", IPPROTO_TCP, TCP_KEEPIDLE, seconds(*ka.time)); !st.ok()) return st;
  }
  if (ka.interval) {
    if (Status st = set("TCP_KEEPINTVL", IPPROTO_TCP, TCP_KEEPINTVL, seconds(*ka.interval)); !st.ok()) return st;
  }
  return Status::Ok();
}

}  // namespace tern::proxy
