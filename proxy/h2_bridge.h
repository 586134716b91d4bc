// The inside of an HTTP/2 client's session (http2_session.h): the bridge between the client's
// streams and their upstreams, shared by the files that implement it: http2_session.cc the
// client's side (its connection's events, routing, the proxy's own answers), h2_to_http2.cc
// HTTP/2 upstreams (one pooled stream per request, driven by nghttp2's callbacks), h2_to_http1.cc
// HTTP/1.1 upstreams (one coroutine per request). Both upstream kinds ask the request's one
// AttemptLoop what follows each attempt. Not for use elsewhere.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "proxy/access_log.h"
#include "proxy/asio_types.h"
#include "proxy/attempt_loop.h"
#include "proxy/h2_connection.h"
#include "proxy/h2_fields.h"
#include "proxy/h2_upstream_pool.h"
#include "proxy/http1_relay.h"
#include "proxy/http_context.h"
#include "proxy/mirror.h"
#include "proxy/request_accounting.h"
#include "proxy/route_decision.h"

namespace tern::proxy {

class H2Bridge;
struct Http1Conn;

// One request: the client's stream and the upstream stream it is bridged to (the pooled
// stream this is, while attached: see H2UpstreamPool).
struct H2Exchange final : H2UpstreamStream {
  explicit H2Exchange(H2Bridge& b) : bridge(b) {}
  H2Bridge& bridge;
  int32_t down_id = 0;
  Headers request, request_trailers;
  size_t header_bytes = 0;   // decoded, HPACK's way (name + value + 32 a field), trailers included
  size_t header_fields = 0;  // decoded, trailers included
  bool too_large = false;  // the header list is over the bounds: 431
  bool grpc = false;       // a gRPC call: the proxy's own answers go in gRPC's form
  // An extended CONNECT for a WebSocket (RFC 8441): bridged to an HTTP/1.1 Upgrade, then a
  // tunnel between the stream's DATA and the upstream connection's bytes.
  bool tunnel = false;
  // The client's side: its request arriving, then its stream closed. A stream can close
  // before its request is whole (a reset): kGone then tells no more of the body is coming.
  enum class Down : uint8_t {
    kReceiving,  // headers in, the body may still be coming
    kComplete,   // END_STREAM: the whole request is here (some perhaps not sent upstream yet)
    kClosed,     // the stream is over, its request had been whole
    kGone,       // the stream is over before its request was whole (reset, connection lost)
  };
  // The answer's side, one state at a time (kNone until the request is routed).
  enum class Up : uint8_t {
    kNone,       // the request's headers are still arriving, or it is being routed
    kDelayed,    // a fault's delay or a retry's backoff: no try in flight, the client's DATA kept
    kTrying,     // a try in flight, no answer from it yet
    kHolding,    // the try's answer head came; held until its short body is whole (kHoldBytes)
    kAnswering,  // the upstream's answer went out to the client; its body follows
    kLocal,      // the proxy answered itself (a local reply, a timeout, a failure): what the
                 // upstream still sends is dropped, its DATA only acknowledged
  };
  Down down = Down::kReceiving;
  Up up = Up::kNone;
  bool request_end() const { return down == Down::kComplete || down == Down::kClosed; }
  bool down_closed() const { return down == Down::kClosed || down == Down::kGone; }
  bool detached() const { return up == Up::kLocal; }
  bool response_started() const { return up == Up::kAnswering || up == Up::kLocal; }
  void ClientEnded() { down = Down::kComplete; }
  void ClientClosed() { down = request_end() ? Down::kClosed : Down::kGone; }
  bool client_reset = false;  // the stream was closed by the client's RST_STREAM (rapid-reset accounting)
  ByteQueue request_body;
  AnswerHeaders answer;  // what the upstream (or the proxy itself) answers
  ByteQueue response_body;
  bool response_end = false;  // the answer's last byte is in response_body (or went out)
  std::shared_ptr<const RouteTable> table;  // outbound: the snapshot the pointers below point into
  const istio::HttpRoute* spec = nullptr;
  const WeightedCluster* picked = nullptr;
  RequestInFlight in_flight;  // http2MaxRequests
  // The request's attempts: endpoints, deadlines, retries (set once the request is routed).
  std::optional<AttemptLoop> attempts;
  // A fault's abort drawn with its delay: given once the delay is over.
  struct DelayedAbort {
    unsigned status = 0;
    std::optional<int> grpc_status;
    std::string body;
    ResponseFlags flags;
  };
  std::optional<DelayedAbort> abort_after_delay;
  Headers upstream_request;
  bool http2_upstream = true;
  // The body as sent (up to kMaxMirroredBody) to send again on a retry.
  Tee kept{.limit = kMaxMirroredBody};
  size_t acknowledged_prefix = 0;  // resent bytes at the queue's front the client was already credited for
  int tries = 0;  // upstream streams opened for it (a deadline names the try it is for)
  bool try_clock = false;  // this try's own deadline is armed (its connection is up)

  // Bytes of the request that went upstream: kept for a retry; returns how many of them the
  // client's window is still to be credited for (a resent prefix was credited already).
  size_t Sent(const uint8_t* data, size_t n) {
    kept.Add({reinterpret_cast<const char*>(data), n});
    size_t resent = std::min(n, acknowledged_prefix);
    acknowledged_prefix -= resent;
    return n - resent;
  }
  // Drops the request bytes not sent yet; returns how many the client is to be credited for.
  size_t DropRequestBody() {
    size_t left = request_body.Clear();
    size_t resent = std::min(left, acknowledged_prefix);
    acknowledged_prefix = 0;
    return left - resent;
  }
  AccessEntry entry;
  std::unique_ptr<Timer> deadline;  // the try's (or the route's) answer deadline, HTTP/2 upstreams
  // An HTTP/1.1 upstream: a coroutine forwards the request and the answer; it waits on `wake`
  // for request bytes and for the client to take response bytes.
  bool h1 = false, h1_done = false;  // h1_done: its coroutine is over
  std::optional<Timer> wake;  // made with the exchange's first HTTP/1.1 forward
  Socket* h1_socket = nullptr;
  // A mirror copy waiting for the request's body (kept up to kMaxMirroredBody, else dropped).
  struct PendingMirror {
    const Cluster* cluster = nullptr;
    Headers request;
    std::string body;
  };
  std::unique_ptr<PendingMirror> mirror;

  void Wake() {
    if (wake) wake->cancel();
  }
  // A finished exchange kept as a spare lets its deadline go (its wait ends aborted: the bridge
  // does not wait for it) and gives back its body queues' room past kKeptQueueBytes: a spare
  // must not hold a large transfer's buffers while its connection idles.
  static constexpr size_t kKeptQueueBytes = 16 * 1024;
  void Quiesce();
  // Makes a spare a new exchange for the connection's next stream, rebuilt in place by the
  // bridge (never from within one of its own calls), with the room its header lists and body
  // queues had, so a stream like the last costs them no allocation.
  void Renew();
  // Nothing refers to it any more: the client's stream and the upstream side are both over.
  bool Finished() const { return down_closed() && !open() && (!h1 || h1_done); }

  // --- the upstream stream's events (H2UpstreamStream), handled by the bridge ---
  int OnAnswerField(std::string_view name, std::string_view value) override;
  void OnAnswerFrame(const nghttp2_frame& frame) override;
  void OnAnswerData(const uint8_t* data, size_t size) override;
  void OnClosed(uint32_t error_code) override;
  void OnConnected() override;
  void OnConnectionLost(ConnectionLoss loss) override;
  ssize_t ReadRequestBody(nghttp2_session* session, uint8_t* buf, size_t length, uint32_t* flags) override;
};

class H2Bridge final : public H2Handler {
  friend struct H2Exchange;  // its upstream stream's events are the bridge's to handle

 public:
  H2Bridge(Socket socket, HttpContext ctx);

  Awaitable<void> Serve(std::string head);

  // --- H2Handler: the client's connection (upstream streams report through their exchange) ---
  int OnBeginFrame(H2Connection& c, const nghttp2_frame_hd& hd) override;
  int OnBeginHeaders(H2Connection& c, const nghttp2_frame& f) override;
  int OnHeader(H2Connection& c, const nghttp2_frame& f, std::string_view name, std::string_view value) override;
  int OnFrameRecv(H2Connection& c, const nghttp2_frame& f) override;
  int OnData(H2Connection& c, int32_t stream, const uint8_t* data, size_t size) override;
  int OnStreamClose(H2Connection& c, int32_t stream, uint32_t error_code) override;

 private:
  using ExchangeMap = std::map<int32_t, std::unique_ptr<H2Exchange>>;
  // Room most requests' fields fit in: h2load and curl send 6 or 7, browsers more.
  static constexpr size_t kUsualFieldCount = 8;
  // Finished exchanges kept for reuse, with their map nodes: bounded, as a connection's
  // concurrent streams are.
  static constexpr size_t kMaxSpareExchanges = 16;
  static constexpr int kMaxHttp1PerEndpoint = 16;
  static constexpr size_t kHttp1ResponseBuffer = 256 * 1024;  // read no further ahead of the client
  static constexpr size_t kKeptHeadBytes = 4096;  // an upstream connection's request head room, kept

  // --- the upstream streams' events (through H2Exchange) ---
  int UpField(H2Exchange& ex, std::string_view name, std::string_view value);
  void UpFrame(H2Exchange& ex, const nghttp2_frame& f);
  void UpData(H2Exchange& ex, const uint8_t* data, size_t size);
  void UpClosed(H2Exchange& ex, uint32_t error_code);
  // The stream's connection failed (or never connected) while the stream was open.
  void UpLost(H2Exchange& ex, ConnectionLoss loss);
  // The try's stream is on a connection that is up: its deadline is its perTryTimeout, within
  // the route's timeout.
  void UpConnected(H2Exchange& ex);
  // The upstream will take no more of the request: what is left is acknowledged and dropped.
  void UpstreamOver(H2Exchange& ex);

  // RFC 9113 6.9.2: a SETTINGS_INITIAL_WINDOW_SIZE that takes any stream's send window past
  // 2^31-1 is a connection error (FLOW_CONTROL_ERROR). nghttp2 answers it per stream with
  // RST_STREAM and leaves that stream's window as it was, so the largest window is noted as the
  // frame begins and the change it carries is checked against it once it is read.
  void NoteSendWindowsBeforeSettings(H2Connection& c);
  bool SettingsOverflowAWindow(const nghttp2_settings& settings) const;

  // A new exchange for the client's stream `id`: a spare one when there is one.
  H2Exchange& Open(int32_t id);
  // Nothing refers to `ex` any more: it goes (renewed) to the spares, or is destroyed.
  void Retire(H2Exchange& ex);

  // The request's headers are complete: route it and open its upstream stream.
  void Start(H2Exchange& ex);
  // The client's END_STREAM came after the request was routed: the route's timeout starts.
  void RequestEnded(H2Exchange& ex);
  Awaitable<void> DelayThenForward(int32_t down_id, std::chrono::milliseconds delay);
  // Sends the routed request upstream: its own coroutine for HTTP/1.1, a stream for HTTP/2.
  void Forward(H2Exchange& ex);
  void ArmDeadline(H2Exchange& ex, std::chrono::steady_clock::time_point until);
  // The route's timeout for an HTTP/2 upstream: no answer in time gives 504 (UT) and resets the
  // upstream stream. The timer dies with its exchange (the wait then ends aborted, touching nothing).
  Awaitable<void> AnswerDeadline(Timer* timer, int32_t down_id, int try_number);

  // An HTTP/2 attempt ended without an answer: tried again when the loop says so, else the
  // failure answered (503/504/502). The client's stream is open and nothing of an answer went
  // out yet.
  void AttemptFailed(H2Exchange& ex, AttemptResult result);
  // The stream is let go and the request sent again (its kept body first) after the backoff, on
  // the endpoint the loop moves on to.
  void RetryNow(H2Exchange& ex);
  Awaitable<void> RetryAfter(int32_t down_id, std::chrono::milliseconds backoff);

  // A copy of the request for the route's mirror (see ShadowRequest), sent once the request is
  // complete; a body over kMaxMirroredBody is not mirrored.
  void Mirror(H2Exchange& ex, const RouteDecision& d, Headers request);
  void MirrorBody(H2Exchange& ex, const uint8_t* data, size_t size);
  void FlushMirror(H2Exchange& ex);

  // --- HTTP/1.1 upstreams (h2_to_http1.cc) ---
  // One stream to an HTTP/1.1 upstream, attempt after attempt as the loop says.
  Awaitable<void> ForwardHttp1(H2Exchange* ex);
  // The request's head and body, as the client sends it; a failure's flag, or kNone.
  Awaitable<ResponseFlag> SendOverHttp1(H2Exchange& ex, Http1Conn& conn);
  // The answer's head (interim answers skipped): a failure's flag, or kNone with the answer in
  // conn.answer_head.
  Awaitable<ResponseFlag> ReadHttp1AnswerHead(H2Exchange& ex, Http1Conn& conn, std::chrono::steady_clock::time_point try_until);
  // The answer, relayed to the client as it streams (a short body first held whole, within the
  // try's deadline). kNone once whole, with `keep` whether the connection may serve again.
  Awaitable<ResponseFlag> RelayHttp1Answer(H2Exchange& ex, Http1Conn& conn, std::chrono::steady_clock::time_point try_until,
                                           bool& keep);
  // After the upstream's 101 to a WebSocket's extended CONNECT: the client's stream gets 200, then
  // bytes flow both ways (the stream's DATA to the connection, the connection's bytes back as
  // DATA) until both sides have ended, each end passed on (END_STREAM as a half-close and back),
  // or the tunnel idles past its destination's idle timeout (flag SI).
  Awaitable<ResponseFlag> RunTunnel(H2Exchange& ex, Http1Conn& conn);
  Awaitable<void> TunnelToClient(H2Exchange& ex, Http1Conn& conn, uint64_t& moved, bool& broken);
  Awaitable<void> TunnelToUpstream(H2Exchange& ex, Http1Conn& conn, uint64_t& moved, bool& broken);
  // A tunnel's both directions wait on the exchange's `wake` without re-arming it (each re-arm
  // would cancel the other's wait): ex.Wake() wakes both.
  static Awaitable<void> WaitTunnel(H2Exchange& ex);
  // The body sent so far goes back to the front of the queue, to be sent again; the client's
  // window was credited for it already.
  static void Requeue(H2Exchange& ex);
  Awaitable<void> WaitFor(H2Exchange& ex);

  // Runs a background task of the bridge's (a delay, a deadline, a backoff, an HTTP/1.1
  // forwarder), counted until it completes: Serve waits for the last before the bridge goes away.
  void Spawn(Awaitable<void> task, const char* what);
  // The upstream failed with `failure` (its flags set). Before the response: the client gets its
  // answer (503, 504, 502). After it began but before its end: the client's stream is reset
  // (never a truncated answer presented as whole).
  void UpstreamFailed(H2Exchange& ex, ResponseFlag failure);
  void SubmitResponse(H2Exchange& ex);
  // The proxy's own answer; with `grpc_status`, gRPC's trailers-only form (HTTP 200, the status
  // in the one header block).
  void Local(H2Exchange& ex, unsigned status, const std::string& body, ResponseFlags flags,
             const std::string& location = "", std::optional<int> grpc_status = std::nullopt);
  // The client's window opens by `n` bytes of the stream's request (taken, or dropped).
  void Credit(H2Exchange& ex, size_t n);
  // More of the answer is there for the client's stream (or its end).
  void ResumeAnswer(H2Exchange& ex);

  // Data providers: what one side received, written on the other; the receiving side's window
  // is opened by as much as was taken.
  ssize_t ReadRequestBody(H2Exchange& ex, nghttp2_session* upstream, uint8_t* buf, size_t length, uint32_t* flags);
  static ssize_t ReadResponseBody(nghttp2_session* session, int32_t stream, uint8_t* buf, size_t length, uint32_t* flags,
                                  nghttp2_data_source* source, void*);

  HttpContext ctx_;
  Executor ex_;
  std::unique_ptr<H2Connection> down_;
  H2UpstreamPool& pool_;  // the worker's HTTP/2 upstream connections
  std::map<boost::asio::ip::tcp::endpoint, int> http1_busy_;  // HTTP/1.1 upstream connections this client's streams hold
  Timer http1_freed_{ex_, Timer::time_point::max()};  // cancelled when one is given back
  ExchangeMap exchanges_;  // by the client's stream id
  std::vector<ExchangeMap::node_type> spare_exchanges_;
  int live_tasks_ = 0;
  Timer tasks_done_;
  const std::string inbound_cluster_;
  const std::string peer_ip_;
  AuthorityCache authorities_;
  std::vector<std::pair<std::string_view, std::string_view>> headers_;  // the router's view, reused
  Rng rng_{std::random_device{}()};
  bool goaway_sent_ = false;
  size_t block_bytes_ = 0;
  int continuations_ = 0;
  int64_t initial_window_before_ = NGHTTP2_INITIAL_WINDOW_SIZE;
  int64_t largest_window_before_ = 0;
  uint64_t streams_opened_ = 0, client_resets_ = 0;
};

}  // namespace tern::proxy
