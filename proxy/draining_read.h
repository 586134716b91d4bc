// Reads that count a short read as having drained the socket.
//
// Asio 1.81's reactor counts a stream socket as drained only when a read returns 0 bytes (EOF).
// After every other read it tries the next one at once ("speculatively") before waiting for
// epoll, and on a connection that carries request and answer in turn that try nearly always
// fails: the peer has not answered yet. Measured with `perf stat -e 'syscalls:sys_enter_*'`
// behind the capture at 16 connections: 3.9 recvfrom per proxied request, of which 1.9 EAGAIN,
// where HAProxy makes 2.0.
//
// A read into a DrainingBuffer reports a short read (fewer bytes than asked) to the reactor as
// draining the socket, as HAProxy and nginx treat it: the next read on that socket waits for
// epoll's edge instead of trying first. That is safe with Asio's edge-triggered registration:
// every arrival of data after the short read raises a new edge, which either completes a waiting
// read or re-enables the speculative try for the next one.
//
// It works by specializing the reactor's receive operation for this buffer type, an Asio detail;
// the static_assert stops the build when Boost changes, to re-check it against the new
// boost/asio/detail/reactive_socket_recv_op.hpp.
#pragma once

#include <sys/socket.h>

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <cerrno>
#include <boost/asio/detail/reactive_socket_recv_op.hpp>
#include <boost/version.hpp>

namespace tern::proxy {

struct DrainingBuffer : boost::asio::mutable_buffer {
  explicit DrainingBuffer(boost::asio::mutable_buffer b) : boost::asio::mutable_buffer(b) {}
};

// The limit of the rule above: a FIN that arrives with the last bytes raises no edge of its own,
// so after a short read the end of the stream is only found by reading. A read that waits for
// the peer's next message may wait for the next edge (a client's FIN is then found when it
// parks, see http1_session.cc); a read in the middle of a message, or of a byte stream whose end
// must be passed on, must not: it calls ReadNow first, the try Asio would have made, and waits
// only when that finds nothing (EAGAIN). True when it settled the read (`ec`, `n`: bytes, or eof).
template <class Socket>
bool ReadNow(Socket& s, boost::asio::mutable_buffer b, boost::system::error_code& ec, size_t& n) {
  ssize_t got = ::recv(s.native_handle(), b.data(), b.size(), MSG_DONTWAIT);
  if (got > 0) {
    ec = {};
    n = static_cast<size_t>(got);
    return true;
  }
  n = 0;
  if (got == 0) {
    ec = boost::asio::error::eof;
    return true;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return false;
  ec = boost::system::error_code(errno, boost::asio::error::get_system_category());
  return true;
}

}  // namespace tern::proxy

namespace boost::asio::detail {

static_assert(BOOST_VERSION == 108100, "DrainingBuffer specializes an Asio detail of Boost 1.81: re-check it");

template <>
class reactive_socket_recv_op_base<tern::proxy::DrainingBuffer> : public reactor_op {
 public:
  reactive_socket_recv_op_base(const boost::system::error_code& success_ec, socket_type socket,
                               socket_ops::state_type state, const tern::proxy::DrainingBuffer& buffers,
                               socket_base::message_flags flags, func_type complete_func)
      : reactor_op(success_ec, &reactive_socket_recv_op_base::do_perform, complete_func),
        socket_(socket),
        state_(state),
        buffers_(buffers),
        flags_(flags) {}

  static status do_perform(reactor_op* base) {
    auto* o = static_cast<reactive_socket_recv_op_base*>(base);
    if (!socket_ops::non_blocking_recv1(o->socket_, o->buffers_.data(), o->buffers_.size(), o->flags_,
                                        (o->state_ & socket_ops::stream_oriented) != 0, o->ec_, o->bytes_transferred_)) {
      return not_done;  // EAGAIN: wait for the edge
    }
    // Fewer bytes than asked (EOF and errors included): nothing more is there until the next edge.
    return o->bytes_transferred_ < o->buffers_.size() ? done_and_exhausted : done;
  }

 private:
  socket_type socket_;
  socket_ops::state_type state_;
  tern::proxy::DrainingBuffer buffers_;
  socket_base::message_flags flags_;
};

}  // namespace boost::asio::detail
