// One worker's HTTP/1.1 upstream connections, shared by all its sessions (HTTP/1.1 and HTTP/2
// clients alike), under each cluster's connectionPool limits:
//  - a request takes an idle connection made for the same cluster (or inbound, for the app) to
//    its endpoint, the most recently used first and never one the peer closed while it idled
//    (checked past 100 ms idle); else
//    opens one while the cluster is under tcp.maxConnections (counted across workers; like
//    Envoy, a worker with no connection to the cluster may always open one); else waits in the
//    cluster's queue while fewer than http1MaxPendingRequests wait; else is refused at once
//    (503, flag UO);
//  - a connection comes back after its exchange when both sides keep it alive and it served
//    fewer than maxRequestsPerConnection requests; a waiter on another worker gets the slot
//    instead (the connection is closed so that worker can open one);
//  - idle connections are closed after the cluster's idleTimeout (swept every second);
//  - tcpKeepalive is applied to every connection opened.
// Inbound connections (to the app) have no cluster: no limits.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <vector>

#include "core/base/status.h"
#include "core/log/once_every.h"
#include "proxy/asio_types.h"
#include "proxy/http1_codec.h"
#include "proxy/response_flags.h"
#include "proxy/route_table.h"

namespace tern {
class Logger;
}

namespace tern::proxy {

struct Http1Conn {
  explicit Http1Conn(Executor ex) : socket(std::move(ex)) {}
  ~Http1Conn();
  Http1Conn(const Http1Conn&) = delete;
  Http1Conn& operator=(const Http1Conn&) = delete;

  // A deadline on the exchange under way (a try's timeout): past it the socket's operations are
  // cancelled. No timer operation per request: one watchdog per connection sleeps until the
  // deadline and is re-armed only when a deadline comes earlier than it would wake anyway.
  void Arm(std::chrono::steady_clock::time_point deadline);
  // Ends the deadline; true when it had passed (the operations were cancelled: a timeout).
  bool Disarm();
  // Gives back the read buffer and the heads' storage of a connection that idles in the pool: a
  // thousand idle upstream connections otherwise hold ~17 KB each.
  void ReleaseBuffers() {
    if (buffer.size() == 0 && buffer.capacity() > 0) buffer.shrink_to_fit();
    answer_head.ReleaseStorage();
    std::string().swap(request_head);
  }

  Socket socket;
  boost::beast::flat_buffer buffer;
  Http1Head answer_head;    // the answer being read (the HTTP/2 bridge's exchanges parse into it)
  std::string request_head;  // the request's head as the HTTP/2 bridge writes it, its room reused
  boost::asio::ip::tcp::endpoint to;
  std::shared_ptr<ClusterState> cluster;  // null inbound
  int64_t max_requests = 0;               // maxRequestsPerConnection; 0: no limit
  std::chrono::milliseconds idle_timeout{std::chrono::hours(1)};
  int64_t requests = 0;                   // exchanges begun on it
  bool reused = false;                    // it served a request before this one
  std::chrono::steady_clock::time_point idle_since;

 private:
  struct Watch;
  static Awaitable<void> Watchdog(std::shared_ptr<Watch> w);
  std::shared_ptr<Watch> watch_;  // shared with its watchdog coroutine, which may outlive the connection
};

class Http1Pool {
 public:
  explicit Http1Pool(Executor ex);
  // Where the pool reports what it cannot act on (a socket option the kernel refuses), at most
  // once a minute. Unset: not reported.
  void SetLogger(const Logger* log) { log_ = log; }
  ~Http1Pool();
  Http1Pool(const Http1Pool&) = delete;
  Http1Pool& operator=(const Http1Pool&) = delete;

  struct Lease {
    std::unique_ptr<Http1Conn> conn;
    // kUpstreamConnectionFailure (connect failed), kUpstreamOverflow (limits: refused or waited
    // too long); kNone with a connection.
    ResponseFlag failure = ResponseFlag::kNone;
  };
  // `cluster`: null inbound. `connect_timeout`: the proxy's, unless the cluster sets one.
  // `give_up`: how long a request may wait in the pending queue.
  // An idle connection to `to` for `cluster`, if one stands (Acquire's first choice), taken
  // without suspending; null when there is none. The sessions try it before Acquire: a busy
  // worker then pays no coroutine frame per request for its connection.
  std::unique_ptr<Http1Conn> TakeIdle(const boost::asio::ip::tcp::endpoint& to, const Cluster* cluster);
  Awaitable<Lease> Acquire(const boost::asio::ip::tcp::endpoint& to, const Cluster* cluster, bool inbound,
                                        std::chrono::milliseconds connect_timeout,
                                        std::chrono::steady_clock::time_point give_up);
  // Back to the pool when `reusable` (the exchange ended whole and both sides keep the
  // connection alive), else closed.
  void Release(std::unique_ptr<Http1Conn> conn, bool reusable);
  // Closes every idle connection and stops the sweeper (the worker is ending).
  void Shutdown();

 private:
  class Waiter;
  void Close(std::unique_ptr<Http1Conn> conn);
  // Closes an idle connection of `cluster` (to any endpoint), handing its slot to the caller.
  bool EvictIdle(const ClusterState* cluster);
  Awaitable<void> Sweep();

  // Idle connections by what they may serve: an endpoint for one cluster (null: inbound).
  using Key = std::pair<boost::asio::ip::tcp::endpoint, const ClusterState*>;
  static Key KeyOf(const Http1Conn& c) { return {c.to, c.cluster.get()}; }

  Executor ex_;
  const Logger* log_ = nullptr;
  OnceEvery option_warning_;
  void Report(const Status& s);
  std::map<Key, std::vector<std::unique_ptr<Http1Conn>>> idle_;
  ConnectionSlots slots_;  // this worker's connections per cluster, under tcp.maxConnections
  Timer sweep_timer_;
  bool sweeping_ = false, shut_down_ = false;
};

}  // namespace tern::proxy
