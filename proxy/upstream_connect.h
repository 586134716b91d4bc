// Opening a connection to an upstream, shared by the TCP relay and both HTTP sessions: bounded
// by the connect timeout, and for inbound traffic made from 127.0.0.6 (::6), the source the
// capture rules exempt, so the proxy's own connection to the app is not captured again.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>

namespace tern::proxy {

enum class ConnectResult { kOk, kFailed, kTimedOut };

boost::asio::awaitable<ConnectResult> ConnectUpstream(boost::asio::ip::tcp::socket& socket,
                                                      const boost::asio::ip::tcp::endpoint& to,
                                                      bool from_passthrough_address, std::chrono::milliseconds timeout);

}  // namespace tern::proxy
