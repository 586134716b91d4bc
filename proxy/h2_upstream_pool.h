// One worker's HTTP/2 upstream connections, shared by all its sessions (HTTP/2 clients' streams
// and HTTP/1.1 clients' requests upgraded to HTTP/2 alike), as Envoy's per-worker pools:
//  - a stream goes on this worker's connection to its endpoint made for the same cluster (or
//    inbound, for the app), multiplexed with every other session's; a new connection is opened
//    when there is none that has room (under the peer's SETTINGS_MAX_CONCURRENT_STREAMS, not
//    told GOAWAY, under the cluster's maxRequestsPerConnection streams);
//  - flow control: the connection's window opens as bytes arrive, each stream's as its owner
//    passes them on, so a slow client holds back its own stream only;
//  - connections count in the cluster's tcp.maxConnections with the HTTP/1.1 pool's (across
//    workers; a worker with no HTTP/2 connection to the cluster may always open one); a stream
//    that would need one more past the limit is refused at once (503, flag UO);
//  - a connection without streams is closed after the cluster's idleTimeout (swept every
//    second); tcpKeepalive and connectTimeout apply as for HTTP/1.1.
// A stream's owner derives from H2UpstreamStream and hears its events synchronously, from the
// connection's frame processing; it lets go with Release (its destructor does too).
#pragma once

#include <sys/types.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <string_view>
#include <tuple>
#include <vector>

#include "core/base/status.h"
#include "core/log/once_every.h"
#include "proxy/asio_types.h"
#include "proxy/h2_connection.h"
#include "proxy/h2_fields.h"
#include "proxy/response_flags.h"
#include "proxy/route_table.h"

namespace tern {
class Logger;
}

namespace tern::proxy {

class H2UpstreamPool;

enum class ConnectionLoss { kConnectFailed, kClosed, kProtocolError };

// One request's stream on a pooled connection, from its owner's side.
class H2UpstreamStream {
 public:
  virtual ~H2UpstreamStream();
  // A field of the answer's header or trailer block. Non-zero (an nghttp2 error) resets the stream.
  virtual int OnAnswerField(std::string_view name, std::string_view value) = 0;
  // A HEADERS or DATA frame of the answer arrived (its fields, its data were passed already).
  virtual void OnAnswerFrame(const nghttp2_frame& frame) = 0;
  virtual void OnAnswerData(const uint8_t* data, size_t size) = 0;
  // The stream is over (the answer ended, or a reset: `error_code`). The owner may be
  // destroyed from inside this call or OnConnectionLost.
  virtual void OnClosed(uint32_t error_code) = 0;
  // Its connection is up: at once when the stream went on one that was, else when the connect
  // succeeds. The try's own clock (perTryTimeout) starts here, as Envoy's starts when its pool
  // is ready: the connect is bounded by connectTimeout and the route's timeout. It must not open
  // or release streams.
  virtual void OnConnected() = 0;
  // Its connection failed before the stream ended: it never connected, it ended or was reset,
  // or the upstream broke the protocol (garbage, a frame nghttp2 refused).
  virtual void OnConnectionLost(ConnectionLoss loss) = 0;
  // The request body, as nghttp2's data provider asks for it (NGHTTP2_ERR_DEFERRED: nothing yet;
  // Resume once there is). `session` is the connection's, for trailers.
  virtual ssize_t ReadRequestBody(nghttp2_session* session, uint8_t* buf, size_t length, uint32_t* flags) = 0;

  bool open() const { return conn_ != nullptr && !closed_; }
  bool attached() const { return conn_ != nullptr; }  // on a connection (its stream may be over)
  int32_t id() const { return id_; }                 // the stream's id on its connection

 private:
  friend class H2UpstreamPool;
  H2UpstreamPool* pool_ = nullptr;
  H2Connection* conn_ = nullptr;
  int32_t id_ = -1;
  bool closed_ = false;
};

class H2UpstreamPool final : public H2Handler {
 public:
  explicit H2UpstreamPool(Executor ex);
  // Where the pool reports what it cannot act on (a socket option the kernel refuses), at most
  // once a minute. Unset: not reported.
  void SetLogger(const Logger* log) { log_ = log; }
  ~H2UpstreamPool() override;
  H2UpstreamPool(const H2UpstreamPool&) = delete;
  H2UpstreamPool& operator=(const H2UpstreamPool&) = delete;

  // Opens `s` (not attached) toward `to` for `cluster` (null inbound); the body, if any, is
  // read through s.ReadRequestBody. kNone, or why not: kUpstreamOverflow (the connection
  // limit, or the connection takes no stream).
  [[nodiscard]] ResponseFlag Open(H2UpstreamStream& s, const boost::asio::ip::tcp::endpoint& to, const Cluster* cluster, bool inbound,
                   std::chrono::milliseconds connect_timeout, const Headers& request, bool has_body);
  // More of the request body is there (or its end): the provider is asked again.
  void Resume(H2UpstreamStream& s);
  // `size` bytes of the answer were passed on (or dropped): the upstream may send as much more
  // on this stream. (The connection's window opens as bytes arrive: a slow reader holds back
  // only its own stream.)
  void Consumed(H2UpstreamStream& s, size_t size);
  // The owner is done with `s`: reset when still open (CANCEL). A no-op when not attached.
  void Release(H2UpstreamStream& s);
  // Ends every connection (the worker is ending).
  void Shutdown();

  // --- H2Handler (the pooled connections' callbacks) ---
  int OnBeginFrame(H2Connection&, const nghttp2_frame_hd&) override { return 0; }
  int OnBeginHeaders(H2Connection&, const nghttp2_frame&) override { return 0; }
  int OnHeader(H2Connection& c, const nghttp2_frame& f, std::string_view name, std::string_view value) override;
  int OnFrameRecv(H2Connection& c, const nghttp2_frame& f) override;
  int OnData(H2Connection& c, int32_t stream, const uint8_t* data, size_t size) override;
  int OnStreamClose(H2Connection& c, int32_t stream, uint32_t error_code) override;

  // Connections open (tests, admin).
  size_t connections() const { return conns_.size(); }

 private:
  struct Conn;
  using Key = std::tuple<boost::asio::ip::tcp::endpoint, const ClusterState*, bool>;

  Conn* Usable(const Key& key);
  void Retire(Conn& conn);
  void Uncount(Conn& conn);  // its slot in the cluster's connection count is given back
  Awaitable<void> Run(Conn* conn, std::chrono::milliseconds connect_timeout);
  Awaitable<void> Sweep();
  void Detach(Conn& conn, H2UpstreamStream& s);
  static ssize_t ReadBody(nghttp2_session* session, int32_t stream, uint8_t* buf, size_t length, uint32_t* flags,
                          nghttp2_data_source* source, void* user_data);

  Executor ex_;
  const Logger* log_ = nullptr;
  OnceEvery option_warning_;
  void Report(const Status& s);
  std::vector<std::unique_ptr<Conn>> conns_;
  std::map<Key, std::vector<Conn*>> by_key_;    // the connections new streams to a key may go on
  std::map<const H2Connection*, Conn*> by_h2_;  // for the callbacks
  ConnectionSlots slots_;                       // this worker's HTTP/2 connections per cluster
  Timer sweep_timer_;
  bool sweeping_ = false, shut_down_ = false;
};

}  // namespace tern::proxy
