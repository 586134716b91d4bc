#include "core/log/logger.h"
#include "proxy/http1_pool.h"

#include <netinet/tcp.h>
#include <sys/socket.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/as_tuple.hpp>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "core/base/check.h"
#include "proxy/batched_send.h"
#include "proxy/upstream_connect.h"

namespace tern::proxy {

namespace asio = boost::asio;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr size_t kMaxIdlePerEndpoint = 512;  // bounds memory; below it an HTTP/2 client's streams would churn connections
constexpr int kMaxAcquireRounds = 1000;  // a waiter woken this often without a connection gives up

class Http1Pool::Waiter final : public PoolWaiter, public std::enable_shared_from_this<Http1Pool::Waiter> {
 public:
  Waiter(Executor ex, const Http1Pool* owner) : ex_(ex), timer_(ex) { pool = owner; }
  // From any thread: the wake-up runs on the waiter's own worker.
  void Wake() override {
    asio::post(ex_, [self = shared_from_this()] {
      self->woken_ = true;
      self->timer_.cancel();
    });
  }
  Awaitable<bool> Wait(Clock::time_point until) {
    timer_.expires_at(until);
    co_await timer_.async_wait(kNoThrow);
    co_return woken_;
  }

 private:
  Executor ex_;
  Timer timer_;
  bool woken_ = false;
};

namespace {

// A connection idle this long is checked before reuse. Servers close idle keep-alive
// connections after seconds (Node 5 s, gunicorn 2 s); one back within this short a time is
// taken as is, sparing busy traffic a system call per request (a close that races it is the
// stale-connection case the sessions replace once).
constexpr std::chrono::milliseconds kCheckIdleAfter{100};

// Whether an idle connection still stands: the peer has neither closed it nor sent anything
// unasked (both end its use), judged without blocking.
bool StillOpen(Socket& s, std::chrono::steady_clock::duration idle) {
  if (!s.is_open()) return false;
  if (idle < kCheckIdleAfter) return true;
  char c;
  ssize_t n = ::recv(s.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace

struct Http1Conn::Watch {
  explicit Watch(const Executor& ex) : timer(ex) {}
  Timer timer;
  Clock::time_point deadline = Clock::time_point::max();  // the exchange's; max: none
  Clock::time_point wakes_at = Clock::time_point::max();  // the timer's expiry
  Socket* socket = nullptr;  // null once the connection is gone
  bool fired = false;
};

Awaitable<void> Http1Conn::Watchdog(std::shared_ptr<Watch> w) {
  while (w->socket) {
    co_await w->timer.async_wait(kNoThrow);
    if (!w->socket) break;
    auto now = Clock::now();
    if (now >= w->deadline) {
      w->fired = true;
      w->deadline = Clock::time_point::max();
      // The read waiting now is cancelled, and the ones a parser still starts after it (its
      // next piece may be queued already) find the receiving side shut: the exchange cannot
      // outlive its deadline. The connection is never reused after a timeout.
      boost::system::error_code ignored;
      w->socket->cancel(ignored);
      w->socket->shutdown(Socket::shutdown_receive, ignored);
    }
    // On to the deadline stored meanwhile, if any; else asleep until Arm wakes it earlier.
    w->wakes_at = w->deadline;
    w->timer.expires_at(w->wakes_at);
  }
}

Http1Conn::~Http1Conn() {
  if (watch_) {
    watch_->socket = nullptr;
    watch_->timer.cancel();  // the watchdog ends
  }
}

void Http1Conn::Arm(Clock::time_point deadline) {
  if (!watch_) {
    watch_ = std::make_shared<Watch>(socket.get_executor());
    watch_->socket = &socket;
    watch_->wakes_at = deadline;
    watch_->timer.expires_at(deadline);
    asio::co_spawn(socket.get_executor(), Watchdog(watch_), asio::detached);
  } else if (deadline < watch_->wakes_at) {
    watch_->wakes_at = deadline;
    watch_->timer.expires_at(deadline);  // wakes the watchdog, which waits again until then
  }
  watch_->deadline = deadline;
  watch_->fired = false;
}

bool Http1Conn::Disarm() {
  if (!watch_) return false;
  watch_->deadline = Clock::time_point::max();
  return std::exchange(watch_->fired, false);
}

Http1Pool::Http1Pool(Executor ex) : ex_(ex), sweep_timer_(ex) {}

Http1Pool::~Http1Pool() { Shutdown(); }

void Http1Pool::Close(std::unique_ptr<Http1Conn> conn) {
  boost::system::error_code ec;
  CloseSocket(conn->socket, ec);
  if (conn->cluster) slots_.Give(*conn->cluster);
}

bool Http1Pool::EvictIdle(const ClusterState* cluster) {
  for (auto& [key, conns] : idle_) {
    if (key.second != cluster || conns.empty()) continue;
    auto conn = std::move(conns.front());  // the least recently used
    conns.erase(conns.begin());
    boost::system::error_code ec;
    CloseSocket(conn->socket, ec);  // its slot passes to the caller's new connection
    return true;
  }
  return false;
}

std::unique_ptr<Http1Conn> Http1Pool::TakeIdle(const tcp::endpoint& to, const Cluster* cluster) {
  // The most recently used first.
  auto it = idle_.find(Key{to, cluster ? cluster->state.get() : nullptr});
  if (it == idle_.end()) return nullptr;
  auto& conns = it->second;
  while (!conns.empty()) {
    auto conn = std::move(conns.back());
    conns.pop_back();
    auto idle = Clock::now() - conn->idle_since;
    if (idle < conn->idle_timeout && StillOpen(conn->socket, idle)) {
      conn->reused = true;
      return conn;
    }
    Close(std::move(conn));
  }
  return nullptr;
}

Awaitable<Http1Pool::Lease> Http1Pool::Acquire(const tcp::endpoint& to, const Cluster* cluster, bool inbound,
                                                     std::chrono::milliseconds connect_timeout, Clock::time_point give_up) {
  ClusterState* state = cluster ? cluster->state.get() : nullptr;
  for (int round = 0; round < kMaxAcquireRounds; ++round) {
    if (auto conn = TakeIdle(to, cluster)) co_return Lease{std::move(conn)};
    // A new one, within the cluster's limit (ConnectionSlots), or in place of an idle one to
    // another endpoint.
    if (!state || slots_.Take(*state, cluster->limits.max_connections) || EvictIdle(state)) {
      auto conn = std::make_unique<Http1Conn>(ex_);
      conn->to = to;
      if (cluster) {
        conn->cluster = cluster->state;
        conn->max_requests = cluster->limits.max_requests_per_connection;
        conn->idle_timeout = cluster->limits.idle_timeout;
      }
      auto timeout = cluster && cluster->limits.connect_timeout ? *cluster->limits.connect_timeout : connect_timeout;
      if (co_await ConnectUpstream(conn->socket, to, inbound, timeout) != ConnectResult::kOk) {
        Close(std::move(conn));
        co_return Lease{nullptr, ResponseFlag::kUpstreamConnectionFailure};
      }
      if (cluster && cluster->limits.keepalive) Report(ApplyKeepalive(conn->socket, *cluster->limits.keepalive));
      if (!sweeping_ && !shut_down_) {
        sweeping_ = true;
        asio::co_spawn(ex_, Sweep(), asio::detached);
      }
      co_return Lease{std::move(conn)};
    }
    // At the limit: wait in the cluster's queue, if it has room.
    if (!TryAcquire(state->pending, cluster->limits.max_pending)) co_return Lease{nullptr, ResponseFlag::kUpstreamOverflow};
    auto waiter = std::make_shared<Waiter>(ex_, this);
    {
      std::lock_guard<std::mutex> lock(state->mu);
      state->waiters.push_back(waiter);
    }
    // A slot may have come free between the check and the queueing: look once more.
    bool woken = state->connections.load(std::memory_order_seq_cst) < cluster->limits.max_connections ||
                 co_await waiter->Wait(give_up);
    state->pending.fetch_sub(1, std::memory_order_seq_cst);
    {
      std::lock_guard<std::mutex> lock(state->mu);  // its queue entry goes with it
      std::erase_if(state->waiters, [&](const std::weak_ptr<PoolWaiter>& w) { return w.expired() || w.lock() == waiter; });
    }
    if (!woken) co_return Lease{nullptr, ResponseFlag::kUpstreamOverflow};  // waited as long as the request may
  }
  co_return Lease{nullptr, ResponseFlag::kUpstreamOverflow};
}

void Http1Pool::Release(std::unique_ptr<Http1Conn> conn, bool reusable) {
  TERN_CHECK(conn, "Http1Pool::Release takes a connection the pool made");
  ++conn->requests;
  reusable = reusable && !shut_down_ && conn->socket.is_open() && (conn->max_requests == 0 || conn->requests < conn->max_requests);
  auto& conns = idle_[KeyOf(*conn)];
  if (!reusable || conns.size() >= kMaxIdlePerEndpoint) return Close(std::move(conn));
  if (conn->cluster && conn->cluster->pending.load(std::memory_order_seq_cst) > 0) {
    if (auto w = conn->cluster->TakeWaiter()) {
      // A waiter here finds it idle; one on another worker needs its slot.
      if (w->pool != this) {
        boost::system::error_code ec;
        CloseSocket(conn->socket, ec);
        slots_.Give(*conn->cluster, /*wake_waiter=*/false);  // `w` is woken below
      } else {
        conn->idle_since = Clock::now();
        conns.push_back(std::move(conn));
      }
      w->Wake();
      return;
    }
  }
  conn->idle_since = Clock::now();
  conns.push_back(std::move(conn));
}

// An idle pooled connection gives its buffers back after this long (see Http1Conn::ReleaseBuffers).
constexpr auto kReleaseBuffersAfter = std::chrono::seconds(1);

Awaitable<void> Http1Pool::Sweep() {
  while (!shut_down_) {
    sweep_timer_.expires_after(std::chrono::seconds(1));
    auto [ec] = co_await sweep_timer_.async_wait(kNoThrow);
    if (ec || shut_down_) break;
    auto now = Clock::now();
    for (auto it = idle_.begin(); it != idle_.end();) {
      auto& conns = it->second;
      for (size_t i = 0; i < conns.size();) {
        if (now - conns[i]->idle_since >= conns[i]->idle_timeout) {
          auto conn = std::move(conns[i]);
          conns.erase(conns.begin() + static_cast<std::ptrdiff_t>(i));
          Close(std::move(conn));
        } else {
          // Idle a second or more: its buffers go back (a busy connection keeps them, and pays
          // no allocation per request); the next exchange on it makes them again.
          if (now - conns[i]->idle_since >= kReleaseBuffersAfter) conns[i]->ReleaseBuffers();
          ++i;
        }
      }
      it = conns.empty() ? idle_.erase(it) : std::next(it);
    }
  }
  sweeping_ = false;
}

void Http1Pool::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  sweep_timer_.cancel();
  for (auto& [key, conns] : idle_) {
    for (auto& c : conns) Close(std::move(c));
  }
  idle_.clear();
}

void Http1Pool::Report(const Status& s) {
  if (!s.ok() && log_ && option_warning_.Due()) {
    log_->Warn("socket option refused", {{"error", s.message()}, {"since_last_warning", option_warning_.suppressed()}});
  }
}

}  // namespace tern::proxy
