// Closes a socket when its time is up, so that whatever operation is pending on it fails. Safe
// against the timer's late completion: once the SocketDeadline is gone (or re-armed), a handler
// already queued touches nothing. For the side paths (probes, the status port); the data path
// has its own per-connection watchdogs.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>

namespace tern::proxy {

class SocketDeadline {
 public:
  explicit SocketDeadline(boost::asio::ip::tcp::socket& socket) : socket_(socket), timer_(socket.get_executor()) {}
  SocketDeadline(boost::asio::ip::tcp::socket& socket, std::chrono::milliseconds after) : SocketDeadline(socket) {
    Arm(after);
  }
  ~SocketDeadline() { Disarm(); }
  SocketDeadline(const SocketDeadline&) = delete;
  SocketDeadline& operator=(const SocketDeadline&) = delete;

  void Arm(std::chrono::milliseconds after) {
    Disarm();
    armed_ = std::make_shared<Armed>(Armed{&socket_, false});
    timer_.expires_after(after);
    timer_.async_wait([armed = armed_](const boost::system::error_code& ec) {
      if (ec || !armed->socket) return;
      armed->expired = true;
      boost::system::error_code ignored;
      armed->socket->close(ignored);
    });
  }
  void Disarm() {
    if (!armed_) return;
    armed_->socket = nullptr;
    timer_.cancel();
  }
  // The socket was closed because the time was up.
  bool expired() const { return armed_ && armed_->expired; }

 private:
  struct Armed {
    boost::asio::ip::tcp::socket* socket;
    bool expired;
  };
  boost::asio::ip::tcp::socket& socket_;
  boost::asio::steady_timer timer_;
  std::shared_ptr<Armed> armed_;
};

}  // namespace tern::proxy
