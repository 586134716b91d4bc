// Opening a connection to an upstream, shared by the TCP relay and the connection pools: bounded
// by the connect timeout, and for inbound traffic made from 127.0.0.6 (::6), the source the
// capture rules exempt, so the proxy's own connection to the app is not captured again.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>

#include "core/base/status.h"
#include "proxy/asio_types.h"
#include "core/istio/destination_rule.h"

namespace tern::proxy {

enum class ConnectResult { kOk, kFailed, kTimedOut };

Awaitable<ConnectResult> ConnectUpstream(Socket& socket,
                                                      const boost::asio::ip::tcp::endpoint& to,
                                                      bool from_passthrough_address, std::chrono::milliseconds timeout);

// A DestinationRule's tcp.tcpKeepalive on an upstream connection (SO_KEEPALIVE and its timers).
Status ApplyKeepalive(Socket& socket, const istio::TcpKeepalive& keepalive);

}  // namespace tern::proxy
