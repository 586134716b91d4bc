// What a cluster's DestinationRule asks of the proxy at run time (compiled once per snapshot),
// and the mutable state that outlives snapshots: each endpoint's load and health, each
// cluster's circuit-breaker counters. A new snapshot carries the state of every cluster and
// endpoint it keeps (by name, by address), so an ejected endpoint stays ejected and requests in
// flight stay counted across a config push. Counters are atomics: workers share them.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "core/istio/destination_rule.h"

namespace tern::proxy {

constexpr int64_t kUnlimited = std::numeric_limits<int64_t>::max();

// connectionPool, with Envoy's defaults where Istio leaves a field unset (no limit).
struct PoolLimits {
  int64_t max_connections = kUnlimited;    // tcp.maxConnections: upstream connections open
  int64_t max_pending = kUnlimited;        // http.http1MaxPendingRequests: requests waiting for one
  int64_t max_requests = kUnlimited;       // http.http2MaxRequests: requests in flight, either version
  int64_t max_retries = kUnlimited;        // http.maxRetries: retries in flight
  int64_t max_requests_per_connection = 0;  // http.maxRequestsPerConnection; 0: no limit
  std::optional<std::chrono::milliseconds> connect_timeout;  // tcp.connectTimeout, else the proxy's
  std::chrono::milliseconds idle_timeout{std::chrono::hours(1)};  // http.idleTimeout (Istio's default)
  std::optional<istio::TcpKeepalive> keepalive;                  // tcp.tcpKeepalive
};

// outlierDetection, with Istio's defaults (interval 10 s, baseEjectionTime 30 s,
// maxEjectionPercent 10). Disabled unless the DestinationRule has outlierDetection.
struct OutlierSettings {
  bool enabled = false;
  int64_t consecutive_5xx = 5;      // 0 disables this detector
  int64_t consecutive_gateway = 0;  // 502, 503, 504 and local failures; 0 disables it
  std::chrono::milliseconds interval{10000};
  std::chrono::milliseconds base_ejection{30000};
  std::chrono::milliseconds max_ejection{300000};  // Envoy's cap on base × ejections
  int64_t max_ejection_percent = 10;
  int64_t min_health_percent = 0;  // below this share of healthy endpoints, ejections are ignored
};

enum class LbPolicy { kLeastRequest, kRoundRobin, kRandom, kPassthrough, kConsistentHash };

// One endpoint's state, shared by every snapshot that lists its address.
struct EndpointState {
  std::atomic<int64_t> active{0};  // requests in flight to it (LEAST_REQUEST)
  std::atomic<int64_t> consecutive_5xx{0}, consecutive_gateway{0};
  std::atomic<int64_t> ejected_until_ns{0};  // steady_clock; in the past (or 0) when not ejected
  // Ejection bookkeeping (rare: under ClusterState::mu).
  int64_t ejections = 0;            // the multiplier of baseEjectionTime
  int64_t times_ejected = 0;        // ever (admin, tests)
};

// A request waiting for an HTTP/1.1 connection to a cluster at its connection limit; woken
// (from any worker) when a connection closes or comes free.
struct PoolWaiter {
  virtual ~PoolWaiter() = default;
  virtual void Wake() = 0;
  const void* pool = nullptr;  // the worker's pool it waits in
};

// Per cluster: circuit-breaker counters and the round-robin cursor.
struct ClusterState {
  std::atomic<int64_t> connections{0};  // upstream connections open, either protocol (all workers)
  std::atomic<int64_t> pending{0};      // requests waiting for a connection
  std::atomic<int64_t> requests{0};     // requests in flight
  std::atomic<int64_t> retries{0};      // retries in flight
  std::atomic<uint64_t> round_robin{0};
  // The latest ejected_until of any endpoint: past it, none is ejected (the fast path).
  std::atomic<int64_t> ejected_until_max_ns{0};
  std::mutex mu;                        // ejection decisions; the connection pool's waiters
  std::deque<std::weak_ptr<PoolWaiter>> waiters;  // under mu, oldest first

  // The oldest live waiter, taken off the queue (null when none).
  std::shared_ptr<PoolWaiter> TakeWaiter() {
    std::lock_guard<std::mutex> lock(mu);
    while (!waiters.empty()) {
      auto w = waiters.front().lock();
      waiters.pop_front();
      if (w) return w;
    }
    return nullptr;
  }
  // A connection closed: the oldest request waiting for one (if any) may open one now.
  void WakeOneWaiter() {
    if (pending.load(std::memory_order_seq_cst) == 0) return;
    if (auto w = TakeWaiter()) w->Wake();
  }
};

inline int64_t SteadyNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Takes one unit of `counter` if it is below `limit`.
inline bool TryAcquire(std::atomic<int64_t>& counter, int64_t limit) {
  int64_t n = counter.load(std::memory_order_relaxed);
  do {
    if (n >= limit) return false;
  } while (!counter.compare_exchange_weak(n, n + 1, std::memory_order_relaxed));
  return true;
}

// One worker pool's connections per cluster, against the cluster's tcp.maxConnections (counted
// across workers and both protocols' pools).
class ConnectionSlots {
 public:
  // A slot for a new connection: under the limit, or the pool's first to the cluster (Envoy's
  // rule: otherwise its requests could wait on connections idle in another worker).
  bool Take(ClusterState& c, int64_t max_connections) {
    int& mine = open_[&c];
    if (mine == 0) c.connections.fetch_add(1, std::memory_order_seq_cst);
    else if (!TryAcquire(c.connections, max_connections)) return false;
    ++mine;
    return true;
  }
  // A connection closed: its slot back; the oldest request waiting for one is woken unless the
  // caller hands the slot to a waiter itself.
  void Give(ClusterState& c, bool wake_waiter = true) {
    --open_[&c];
    c.connections.fetch_sub(1, std::memory_order_seq_cst);
    if (wake_waiter) c.WakeOneWaiter();
  }

 private:
  std::map<const ClusterState*, int> open_;
};

}  // namespace tern::proxy
