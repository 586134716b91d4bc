#include "proxy/batched_send.h"

#include <liburing.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstdlib>
#include <string_view>
#include <vector>

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
  enum class State : uint8_t {
    kQueued,     // its SQE is in the ring, not submitted yet
    kSubmitted,  // the kernel has it; its completion is awaited
    kDone,       // `result` is final
  };
  // One queued write. Entries are reused turn after turn (see spare), and never move while the
  // ring may point at their msghdr.
  struct Pending {
    msghdr msg{};
    std::array<iovec, kMaxPieces> iov;
    Completion done;  // the writer's
    int fd = -1;
    io_uring_sqe* sqe = nullptr;  // while kQueued
    bool in_ring = false;         // it was given an SQE (a send, or the no-op it became)
    State state = State::kQueued;
    int result = 0;
  };

  io_uring ring{};
  bool ring_ok = false;
  bool flush_posted = false;
  // Completions name their entry as (batch << 32 | index): one that arrives for another batch
  // (a no-op left from a failed submit) is ignored.
  uint32_t batch_number = 0;
  size_t first_unsubmitted = 0;  // entries before it were handed to the kernel
  std::vector<std::unique_ptr<Pending>> pending;     // this turn's
  std::vector<std::unique_ptr<Pending>> batch_storage;  // empty: a vector's capacity, kept between flushes
  std::vector<std::unique_ptr<Pending>> spare;       // entries to reuse
  static constexpr size_t kMaxSpare = kRingEntries;

  Pending& Add() {
    std::unique_ptr<Pending> p;
    if (spare.empty()) {
      p = std::make_unique<Pending>();
    } else {
      p = std::move(spare.back());
      spare.pop_back();
      p->msg = msghdr{};
      p->fd = -1;
      p->sqe = nullptr;
      p->in_ring = false;
      p->state = State::kQueued;
      p->result = 0;
    }
    pending.push_back(std::move(p));
    return *pending.back();
  }

  Impl() { ring_ok = RingAllowed() && io_uring_queue_init(kRingEntries, &ring, 0) == 0; }
  // TERN_IO_URING=off: plain sendmsg, as where the kernel or a seccomp profile refuses io_uring
  // (for a kernel whose io_uring misbehaves, and to test that path).
  static bool RingAllowed() {
    const char* setting = std::getenv("TERN_IO_URING");
    return !setting || std::string_view(setting) != "off";
  }
  ~Impl() {
    if (ring_ok) io_uring_queue_exit(&ring);
  }

  // A plain sendmsg, where io_uring is unavailable: the bytes taken, or -errno.
  static int SendNow(Pending& p) {
    for (;;) {
      ssize_t n = ::sendmsg(p.fd, &p.msg, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n >= 0) return static_cast<int>(n);
      if (errno != EINTR) return -errno;
    }
  }

  static void Finish(Pending& p, int result) {
    p.state = State::kDone;
    p.result = result;
    p.sqe = nullptr;
  }

  // Hands the queued entries to the kernel. What it did not take is turned into no-ops (their
  // writes fail here, and their connections end): never left in the ring to go out later.
  void Submit() {
    int taken = io_uring_submit(&ring);
    // The kernel takes SQEs in order: the first `taken` of this window's.
    size_t position = 0, in_window = 0;
    for (size_t i = first_unsubmitted; i < pending.size(); ++i) in_window += pending[i]->in_ring;
    const size_t ok = taken > 0 ? std::min(static_cast<size_t>(taken), in_window) : 0;
    for (size_t i = first_unsubmitted; i < pending.size(); ++i) {
      Pending& p = *pending[i];
      if (!p.in_ring) continue;  // refused before the ring
      bool went = position++ < ok;
      if (p.state != State::kQueued) continue;  // withdrawn: a no-op, already done
      if (went) {
        p.state = State::kSubmitted;
        p.sqe = nullptr;
      } else {
        io_uring_prep_nop(p.sqe);
        Finish(p, -EIO);
      }
    }
    first_unsubmitted = pending.size();
    if (ok < in_window) {
      io_uring_submit(&ring);  // the no-ops, so the ring is empty again (their completions are ignored)
    }
  }

  // Takes every completion available now.
  void Reap() {
    io_uring_cqe* cqe = nullptr;
    while (io_uring_peek_cqe(&ring, &cqe) == 0) {
      uint64_t data = io_uring_cqe_get_data64(cqe);
      size_t index = data & 0xffffffffu;
      if ((data >> 32) == batch_number && index < pending.size() && pending[index]->state == State::kSubmitted) {
        Finish(*pending[index], cqe->res);
      }
      io_uring_cqe_seen(&ring, cqe);
    }
  }

  void Flush() {
    flush_posted = false;
    if (pending.empty()) return;
    if (ring_ok) {
      Submit();
      Reap();
    }
    // MSG_DONTWAIT: each send completed during the submit (a full socket says EAGAIN). Should a
    // kernel still be working on one, it is waited for, boundedly; past that it fails.
    for (auto& entry : pending) {
      Pending& p = *entry;
      while (p.state == State::kSubmitted) {
        io_uring_cqe* cqe = nullptr;
        __kernel_timespec wait{.tv_sec = 1, .tv_nsec = 0};
        int r = io_uring_wait_cqe_timeout(&ring, &cqe, &wait);
        if (r == -EINTR) continue;
        if (r != 0) {
          Finish(p, -EIO);
          break;
        }
        Reap();
      }
    }
    // Resumed writers may write again: into the next turn's batch, not this one. Should a
    // resumed writer throw, the entries not reached yet are destroyed with `batch`.
    std::vector<std::unique_ptr<Pending>> batch = std::move(batch_storage);
    batch.clear();
    batch.swap(pending);
    first_unsubmitted = 0;
    ++batch_number;
    for (auto& entry : batch) {
      Pending& p = *entry;
      if (p.result == -ECANCELED) p.done(asio::error::operation_aborted, 0);
      else if (p.result >= 0) p.done({}, static_cast<size_t>(p.result));
      else if (p.result == -EAGAIN || p.result == -EWOULDBLOCK) p.done({}, 0);
      else p.done(error_code(-p.result, boost::system::system_category()), 0);
      if (spare.size() < kMaxSpare) spare.push_back(std::move(entry));
    }
    batch.clear();
    batch_storage = std::move(batch);
  }
};

BatchedSends::BatchedSends(asio::execution_context& ctx) : service(ctx), impl_(std::make_unique<Impl>()) {}
BatchedSends::~BatchedSends() = default;

void BatchedSends::shutdown() {
  // Writers still waiting are destroyed here, with the context's other handlers.
  std::vector<std::unique_ptr<Impl::Pending>> waiting;
  waiting.swap(impl_->pending);
  impl_->first_unsubmitted = 0;
  waiting.clear();
  impl_->spare.clear();
}

BatchedSends& BatchedSends::Of(Socket& s) { return asio::use_service<BatchedSends>(s.get_executor().context()); }

bool BatchedSends::batching() const { return impl_->ring_ok; }

void BatchedSends::Withdraw(Socket& s) {
  if (!s.is_open()) return;
  const int fd = s.native_handle();
  for (auto& entry : impl_->pending) {
    Impl::Pending& p = *entry;
    if (p.fd != fd || p.state != Impl::State::kQueued) continue;
    // Not submitted: the send becomes a no-op. (One submitted with a full ring earlier in the
    // turn already went, to this socket: its result stands.)
    uint64_t data = p.sqe->user_data;
    io_uring_prep_nop(p.sqe);
    io_uring_sqe_set_data64(p.sqe, data);
    Impl::Finish(p, -ECANCELED);
  }
}

void CloseSocket(Socket& s, error_code& ec) {
  BatchedSends::Of(s).Withdraw(s);
  s.close(ec);
}

void BatchedSends::Queue(Socket& s, std::span<const asio::const_buffer> buffers, Completion done) {
  Impl& im = *impl_;
  const int fd = s.native_handle();
  io_uring_sqe* sqe = nullptr;
  if (fd >= 0 && im.ring_ok) {
    sqe = io_uring_get_sqe(&im.ring);
    if (!sqe) {  // a full ring: what it holds goes in now (and is reaped, so the CQ never overflows)
      im.Submit();
      im.Reap();
      sqe = io_uring_get_sqe(&im.ring);
    }
  }
  Impl::Pending& p = im.Add();
  const size_t index = im.pending.size() - 1;
  p.done = std::move(done);
  p.fd = fd;
  size_t count = std::min(buffers.size(), p.iov.size());
  for (size_t i = 0; i < count; ++i) {
    p.iov[i].iov_base = const_cast<void*>(buffers[i].data());
    p.iov[i].iov_len = buffers[i].size();
  }
  p.msg.msg_iov = p.iov.data();
  p.msg.msg_iovlen = count;
  if (fd < 0) {
    Impl::Finish(p, -EBADF);  // closed already: nothing for the ring
  } else if (!im.ring_ok) {
    Impl::Finish(p, Impl::SendNow(p));  // no io_uring: sent now, resumed with the batch
  } else if (!sqe) {
    Impl::Finish(p, -EIO);
  } else {
    p.sqe = sqe;
    p.in_ring = true;
    io_uring_prep_sendmsg(sqe, fd, &p.msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, (uint64_t{im.batch_number} << 32) | index);
  }
  if (!im.flush_posted) {
    im.flush_posted = true;
    asio::post(s.get_executor(), [&im] { im.Flush(); });
  }
}

}  // namespace tern::proxy
