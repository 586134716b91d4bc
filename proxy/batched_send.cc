#include "proxy/batched_send.h"

#include <liburing.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <deque>

namespace tern::proxy {

namespace asio = boost::asio;
using boost::system::error_code;

asio::execution_context::id BatchedSends::id;

namespace {
// Ring size: one turn rarely writes more; past it the ring is submitted mid-turn.
constexpr unsigned kRingEntries = 256;
constexpr size_t kMaxPieces = 32;  // per message; more are sent by the caller's next write
}  // namespace

struct BatchedSends::Impl {
  // A writer waiting for its result, whatever its completion handler's type.
  struct Waiter {
    virtual ~Waiter() = default;
    virtual void Complete(error_code ec, size_t n) = 0;
  };
  template <class Handler>
  struct HandlerWaiter final : Waiter {
    explicit HandlerWaiter(Handler h) : handler(std::move(h)) {}
    void Complete(error_code ec, size_t n) override { std::move(handler)(ec, n); }
    Handler handler;
  };
  struct Pending {
    msghdr msg{};
    std::array<iovec, kMaxPieces> iov;
    std::unique_ptr<Waiter> waiter;
    int fd = -1;
    io_uring_sqe* sqe = nullptr;  // while not yet submitted
    bool withdrawn = false;
    int result = 0;
  };

  io_uring ring{};
  bool ring_ok = false;
  bool flush_posted = false;
  std::deque<Pending> pending;  // this turn's; a deque keeps each msghdr where the ring saw it

  Impl() { ring_ok = io_uring_queue_init(kRingEntries, &ring, 0) == 0; }
  ~Impl() {
    if (ring_ok) io_uring_queue_exit(&ring);
  }

  void Flush() {
    flush_posted = false;
    if (pending.empty()) return;
    io_uring_submit(&ring);
    // MSG_DONTWAIT: every send completed during the submit (a full socket with EAGAIN).
    size_t reaped = 0;
    while (reaped < pending.size()) {
      io_uring_cqe* cqe = nullptr;
      int r = io_uring_peek_cqe(&ring, &cqe);
      if (r != 0) {
        do r = io_uring_wait_cqe(&ring, &cqe);
        while (r == -EINTR || r == -EAGAIN);
      }
      if (r != 0) break;  // the ring failed: the rest fail too (their connections end)
      Pending& p = pending[cqe->user_data];
      p.result = p.withdrawn ? -ECANCELED : cqe->res;
      io_uring_cqe_seen(&ring, cqe);
      ++reaped;
    }
    for (size_t i = reaped; i < pending.size(); ++i) pending[i].result = -EIO;
    // Resumed writers may write again: into the next turn's batch, not this one.
    std::deque<Pending> batch;
    batch.swap(pending);
    for (Pending& p : batch) {
      if (p.result == -ECANCELED) p.waiter->Complete(asio::error::operation_aborted, 0);
      else if (p.result >= 0) p.waiter->Complete({}, static_cast<size_t>(p.result));
      else if (p.result == -EAGAIN || p.result == -EWOULDBLOCK) p.waiter->Complete({}, 0);
      else p.waiter->Complete(error_code(-p.result, boost::system::system_category()), 0);
    }
  }
};

BatchedSends::BatchedSends(asio::execution_context& ctx) : service(ctx), impl_(std::make_unique<Impl>()) {}
BatchedSends::~BatchedSends() = default;

void BatchedSends::shutdown() {
  // Writers still waiting are destroyed here, with the context's other handlers.
  impl_->pending.clear();
}

BatchedSends& BatchedSends::Of(Socket& s) { return asio::use_service<BatchedSends>(s.get_executor().context()); }

bool BatchedSends::batching() const { return impl_->ring_ok; }

void BatchedSends::Withdraw(Socket& s) {
  if (!s.is_open()) return;
  const int fd = s.native_handle();
  for (size_t i = 0; i < impl_->pending.size(); ++i) {
    Impl::Pending& p = impl_->pending[i];
    if (p.fd != fd || p.withdrawn) continue;
    p.withdrawn = true;
    if (p.sqe) {  // not submitted: the send becomes a no-op
      io_uring_prep_nop(p.sqe);
      io_uring_sqe_set_data64(p.sqe, i);
    }
    // (Submitted with a full ring earlier in the turn: it already went, to this socket.)
  }
}

void CloseSocket(Socket& s, error_code& ec) {
  BatchedSends::Of(s).Withdraw(s);
  s.close(ec);
}

Awaitable<std::tuple<error_code, size_t>> BatchedSends::Send(Socket& s, std::span<const asio::const_buffer> buffers) {
  return asio::async_initiate<decltype(kNoThrow), void(error_code, size_t)>(
      [this, &s, buffers](auto handler) {
        Impl& im = *impl_;
        Impl::Pending& p = im.pending.emplace_back();
        size_t count = std::min(buffers.size(), p.iov.size());
        for (size_t i = 0; i < count; ++i) {
          p.iov[i].iov_base = const_cast<void*>(buffers[i].data());
          p.iov[i].iov_len = buffers[i].size();
        }
        p.msg.msg_iov = p.iov.data();
        p.msg.msg_iovlen = count;
        p.waiter = std::make_unique<Impl::HandlerWaiter<decltype(handler)>>(std::move(handler));
        io_uring_sqe* sqe = io_uring_get_sqe(&im.ring);
        if (!sqe) {  // a full ring: what it holds goes in now, completions are reaped at the flush
          io_uring_submit(&im.ring);
          for (Impl::Pending& q : im.pending) q.sqe = nullptr;
          sqe = io_uring_get_sqe(&im.ring);
        }
        p.fd = s.native_handle();
        p.sqe = sqe;
        io_uring_prep_sendmsg(sqe, p.fd, &p.msg, MSG_DONTWAIT | MSG_NOSIGNAL);
        io_uring_sqe_set_data64(sqe, im.pending.size() - 1);
        if (!im.flush_posted) {
          im.flush_posted = true;
          asio::post(s.get_executor(), [&im] { im.Flush(); });
        }
      },
      kNoThrow);
}

}  // namespace tern::proxy
