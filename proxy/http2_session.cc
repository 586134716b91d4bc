#include "proxy/http2_session.h"

#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <optional>
#include <map>
#include <memory>
#include <random>
#include <vector>

#include "proxy/access_log.h"
#include "proxy/batched_send.h"
#include "proxy/h2_connection.h"
#include "proxy/h2_fields.h"
#include "proxy/h2_upstream_pool.h"
#include "proxy/http1_pool.h"
#include "proxy/header_limits.h"
#include "proxy/http1_codec.h"
#include "proxy/http1_relay.h"
#include "proxy/mesh_headers.h"
#include "proxy/mirror.h"
#include "proxy/request_accounting.h"
#include "proxy/route_decision.h"
#include "proxy/upstream_connect.h"

namespace tern::proxy {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;

namespace {

constexpr size_t kMaxHeaderBlockBytes = 256 * 1024;  // encoded, HEADERS + CONTINUATION
constexpr int kMaxContinuationFrames = 6;  // 64 KiB of headers needs 4 at the default frame size
constexpr uint64_t kRapidResetMinStreams = 100;  // judge a client's resets only past this many streams
// A header list past kMaxHeaderBytes / kMaxHeaderFields is answered 431; one this far past them
// ends the connection (see OnHeader).
constexpr size_t kMaxDecodedHeaderBytes = 4 * kMaxHeaderBytes;
constexpr size_t kMaxDecodedHeaderFields = 4 * kMaxHeaderFields;
// Http1Exchange's result when the answer was dropped for a retry.
constexpr const char* kRetriableAnswer = "retriable answer";

class Bridge;

// One request: the client's stream and the upstream stream it is bridged to (the pooled
// stream this is, while attached: see H2UpstreamPool).
struct Exchange final : H2UpstreamStream {
  explicit Exchange(Bridge& b) : bridge(b) {}
  Bridge& bridge;
  int32_t down_id = 0;
  Headers request, request_trailers;
  size_t header_bytes = 0;   // decoded, HPACK's way (name + value + 32 a field), trailers included
  size_t header_fields = 0;  // decoded, trailers included
  bool too_large = false;  // the header list is over the bounds: 431
  bool grpc = false;       // a gRPC call: the proxy's own answers go in gRPC's form
  ByteQueue request_body;
  bool request_end = false;
  AnswerHeaders answer;           // what the upstream (or the proxy itself) answers
  bool response_started = false;  // final headers submitted to the client
  bool holding_answer = false;    // a short answer's head, held until its body is whole (kHoldBytes)
  ByteQueue response_body;
  bool response_end = false;
  bool down_closed = false, client_reset = false;
  // The proxy answered itself (a local reply, a timeout): what the upstream still sends is
  // dropped, its DATA only acknowledged.
  bool detached = false;
  std::shared_ptr<const RouteTable> table;  // outbound: the snapshot the pointers below point into
  const istio::HttpRoute* spec = nullptr;
  const WeightedCluster* picked = nullptr;
  const Cluster* cluster = nullptr;            // outbound: for outlier detection and the limits
  const UpstreamEndpoint* endpoint = nullptr;
  RequestInFlight in_flight;                   // http2MaxRequests
  std::optional<EndpointLoad> load;            // LEAST_REQUEST's count while the upstream has it
  // A fault's abort drawn with its delay: given once the delay is over.
  struct DelayedAbort {
    unsigned status = 0;
    std::optional<int> grpc_status;
    std::string body;
    const char* flags = "-";
  };
  std::optional<DelayedAbort> abort_after_delay;
  // Held by a fault-injected delay: where it goes once the delay is over.
  tcp::endpoint to;
  Headers upstream_request;
  bool http2_upstream = true;
  bool delayed = false;  // its body is kept until the delay is over
  // Retries: the route's (none inbound), the balancer's key for the next pick, the body as sent
  // (up to kMaxMirroredBody) to send again, and the deadline every try shares.
  std::optional<Retrier> retrier;
  std::optional<uint64_t> hash;
  std::string kept_body;
  bool keep_body = false;      // a retry is possible: the body is copied as it goes
  bool kept_overflow = false;  // bytes were sent that are not kept: the request cannot be resent
  size_t acknowledged_prefix = 0;  // resent bytes at the queue's front the client was already credited for
  std::chrono::steady_clock::time_point give_up = std::chrono::steady_clock::time_point::max();
  int tries = 0;  // upstream streams opened for it (a deadline names the try it is for)
  bool try_clock = false;  // this try's own deadline is armed (its connection is up)

  // Bytes of the request that went upstream: kept for a retry; returns how many of them the
  // client's window is still to be credited for (a resent prefix was credited already).
  size_t Sent(const uint8_t* data, size_t n) {
    if (!keep_body) {
      kept_overflow = kept_overflow || n > 0;
    } else if (!kept_overflow) {
      if (kept_body.size() + n > kMaxMirroredBody) kept_overflow = true, kept_body.clear();
      else kept_body.append(reinterpret_cast<const char*>(data), n);
    }
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
  // An HTTP/1.1 upstream: a coroutine forwards the request and the answer; it waits on `wake`
  // for request bytes and for the client to take response bytes.
  std::optional<std::chrono::milliseconds> timeout;  // the route's: 504 (UT) without an answer by then
  std::unique_ptr<Timer> deadline;
  bool h1 = false, h1_done = false;
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
  // Makes this a new exchange for the connection's next stream, rebuilt in place, with the room
  // its header lists and body queues had (so a stream like the last costs them no allocation),
  // up to kKeptQueueBytes a queue: a spare must not hold a large transfer's buffers while its
  // connection idles. Only once nothing refers to it any more (Finished).
  static constexpr size_t kKeptQueueBytes = 16 * 1024;
  void Renew() {
    Bridge& b = bridge;
    Headers fields = std::move(request), answer_fields = std::move(answer.response), upstream = std::move(upstream_request);
    ByteQueue in = std::move(request_body), out = std::move(response_body);
    this->~Exchange();
    new (this) Exchange(b);
    request = std::move(fields);
    request.clear();
    answer.response = std::move(answer_fields);
    answer.response.clear();
    upstream_request = std::move(upstream);
    upstream_request.clear();
    if (in.capacity() <= kKeptQueueBytes) {
      request_body = std::move(in);
      request_body.Clear();
    }
    if (out.capacity() <= kKeptQueueBytes) {
      response_body = std::move(out);
      response_body.Clear();
    }
  }
  // Nothing refers to it any more: the client's stream and the upstream side are both over.
  bool Finished() const { return down_closed && !open() && (!h1 || h1_done); }

  // --- the upstream stream's events (H2UpstreamStream), handled by the bridge ---
  int OnAnswerField(std::string_view name, std::string_view value) override;
  void OnAnswerFrame(const nghttp2_frame& frame) override;
  void OnAnswerData(const uint8_t* data, size_t size) override;
  void OnClosed(uint32_t error_code) override;
  void OnConnected() override;
  void OnConnectionLost(ConnectionLoss loss) override;
  ssize_t ReadRequestBody(nghttp2_session* session, uint8_t* buf, size_t length, uint32_t* flags) override;
};

// An HTTP/1.1 exchange's 16 KiB body buffer, taken from the worker thread's spares and given
// back after: a stream costs no allocation when one finished before it. The spares are the
// thread's, not a bridge's, so a coroutine frame destroyed late (at shutdown, on another thread)
// never returns its buffer into a bridge that is gone.
constexpr size_t kChunk = 16384;
class SpareChunk {
 public:
  SpareChunk() {
    if (Spares().empty()) {
      chunk_ = std::make_unique_for_overwrite<uint8_t[]>(kChunk);  // uninitialized: written before read
    } else {
      chunk_ = std::move(Spares().back());
      Spares().pop_back();
    }
  }
  ~SpareChunk() {
    if (Spares().size() < kMaxSpares) Spares().push_back(std::move(chunk_));
  }
  SpareChunk(const SpareChunk&) = delete;
  SpareChunk& operator=(const SpareChunk&) = delete;
  uint8_t* get() const { return chunk_.get(); }

 private:
  static constexpr size_t kMaxSpares = 8;
  static std::vector<std::unique_ptr<uint8_t[]>>& Spares() {
    thread_local std::vector<std::unique_ptr<uint8_t[]>> spares;
    return spares;
  }
  std::unique_ptr<uint8_t[]> chunk_;
};

class Bridge final : public H2Handler {
  friend struct Exchange;  // its upstream stream's events are the bridge's to handle

 public:
  Bridge(Socket socket, HttpContext ctx)
      : ctx_(std::move(ctx)),
        ex_(socket.get_executor()),
        down_(std::make_unique<H2Connection>(std::move(socket), H2Connection::Role::kServer, *this)),
        pool_(*ctx_.h2_pool),
        tasks_done_(ex_),
        inbound_cluster_("inbound|" + std::to_string(ctx_.original.port()) + "||"),
        peer_ip_(ctx_.peer.address().to_string()) {}

  Awaitable<void> Serve(std::string head) {
    co_await down_->Run(std::move(head));
    // The client is gone: every upstream stream is reset (the pooled connections stay), every
    // HTTP/1.1 exchange ended, and the bridge waits for its coroutines.
    for (auto& [id, ex] : exchanges_) {
      pool_.Release(*ex);
      if (ex->h1_socket) {
        boost::system::error_code ignored;
        CloseSocket(*ex->h1_socket, ignored);
      }
      if (ex->deadline) ex->deadline->cancel();
      ex->down_closed = true;
      ex->Wake();
    }
    http1_freed_.cancel();
    while (live_tasks_ > 0) {
      tasks_done_.expires_at(Timer::time_point::max());
      co_await tasks_done_.async_wait(kNoThrow);
    }
  }

  // --- H2Handler: the client's connection (upstream streams report through their Exchange) ---
  int OnBeginFrame(H2Connection& c, const nghttp2_frame_hd& hd) override {
    if (hd.type == NGHTTP2_SETTINGS && !(hd.flags & NGHTTP2_FLAG_ACK)) NoteSendWindowsBeforeSettings(c);
    // The CONTINUATION flood: a header block is bounded in frames and bytes before HPACK runs.
    if (hd.type == NGHTTP2_HEADERS) {
      block_bytes_ = hd.length;
      continuations_ = 0;
    } else if (hd.type == NGHTTP2_CONTINUATION) {
      block_bytes_ += hd.length;
      if (++continuations_ > kMaxContinuationFrames || block_bytes_ > kMaxHeaderBlockBytes) {
        ctx_.log->Warn("http2: header block too long, connection ended",
                       {{"downstream", EndpointString(ctx_.peer)}, {"frames", continuations_}, {"bytes", block_bytes_}});
        // GOAWAY is queued for the writer; the failure stops reading the block here.
        nghttp2_session_terminate_session(c.session(), NGHTTP2_ENHANCE_YOUR_CALM);
        return NGHTTP2_ERR_CALLBACK_FAILURE;
      }
    }
    return 0;
  }

  int OnBeginHeaders(H2Connection& c, const nghttp2_frame& f) override {
    if (f.headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    Exchange& ex = Open(f.hd.stream_id);
    ex.entry.start = std::chrono::steady_clock::now();  // a spare was built when its last stream ended
    ex.down_id = f.hd.stream_id;
    ex.entry.protocol = "HTTP/2";
    ex.request.reserve(kUsualFieldCount);  // one allocation for most requests' fields
    nghttp2_session_set_stream_user_data(c.session(), f.hd.stream_id, &ex);
    ++streams_opened_;
    return 0;
  }

  int OnHeader(H2Connection& c, const nghttp2_frame& f, std::string_view name, std::string_view value) override {
    if (f.hd.type != NGHTTP2_HEADERS) return 0;
    auto* ex = static_cast<Exchange*>(nghttp2_session_get_stream_user_data(c.session(), f.hd.stream_id));
    if (!ex) return 0;
    bool trailers = f.headers.cat != NGHTTP2_HCAT_REQUEST;
    Headers& into = trailers ? ex->request_trailers : ex->request;
    ex->header_bytes += name.size() + value.size() + 32;
    ++ex->header_fields;
    if (ex->header_bytes > kMaxDecodedHeaderBytes || ex->header_fields > kMaxDecodedHeaderFields) {
      // HPACK amplification: a few bytes on the wire can name a 4 KiB table entry thousands of
      // times, and nghttp2 checks every decoded value before this callback sees it. Past a
      // bound no honest client reaches (it was told SETTINGS_MAX_HEADER_LIST_SIZE) the
      // connection ends at once, so the rest of the block is never decoded.
      ctx_.log->Warn("http2: header list far over its bound, connection ended",
                     {{"downstream", EndpointString(ctx_.peer)}, {"decoded_bytes", ex->header_bytes}, {"fields", ex->header_fields}});
      nghttp2_session_terminate_session(c.session(), NGHTTP2_ENHANCE_YOUR_CALM);
      return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    if (ex->header_bytes > kMaxHeaderBytes || into.size() >= kMaxHeaderFields) {
      ex->too_large = true;
      return 0;  // keep decoding (HPACK state must advance); store nothing more
    }
    into.emplace_back(name, value);
    return 0;
  }

  int OnFrameRecv(H2Connection& c, const nghttp2_frame& f) override {
    if (f.hd.type == NGHTTP2_SETTINGS && !(f.hd.flags & NGHTTP2_FLAG_ACK) && SettingsOverflowAWindow(f.settings)) {
      ctx_.log->Warn("http2: SETTINGS_INITIAL_WINDOW_SIZE overflows a stream's window, connection ended",
                     {{"downstream", EndpointString(ctx_.peer)}});
      nghttp2_session_terminate_session(c.session(), NGHTTP2_FLOW_CONTROL_ERROR);
      return 0;
    }
    auto* ex = f.hd.stream_id ? static_cast<Exchange*>(nghttp2_session_get_stream_user_data(c.session(), f.hd.stream_id))
                              : nullptr;
    bool end = f.hd.flags & NGHTTP2_FLAG_END_STREAM;
    if (f.hd.type == NGHTTP2_RST_STREAM && ex && !ex->response_end) ex->client_reset = true;
    if (!ex || (f.hd.type != NGHTTP2_HEADERS && f.hd.type != NGHTTP2_DATA)) return 0;
    if (end) ex->request_end = true;
    if (f.hd.type == NGHTTP2_HEADERS && f.headers.cat == NGHTTP2_HCAT_REQUEST) {
      Start(*ex);
      return 0;
    }
    if (end && ex->mirror) FlushMirror(*ex);
    if (ex->open() && end) pool_.Resume(*ex);
    else if (end) ex->Wake();
    return 0;
  }

  int OnData(H2Connection& c, int32_t stream, const uint8_t* data, size_t size) override {
    auto* ex = static_cast<Exchange*>(nghttp2_session_get_stream_user_data(c.session(), stream));
    if (ex && ex->mirror) MirrorBody(*ex, data, size);
    if (ex && ((ex->h1 && !ex->h1_done) || ex->delayed)) {
      ex->request_body.Append(data, size);
      ex->Wake();
      return 0;
    }
    if (!ex || !ex->open()) {
      nghttp2_session_consume(c.session(), stream, size);  // nobody will read it: acknowledge and drop
      return 0;
    }
    ex->request_body.Append(data, size);
    pool_.Resume(*ex);
    return 0;
  }

  int OnStreamClose(H2Connection& c, int32_t stream, uint32_t /*error_code*/) override {
    auto* ex = static_cast<Exchange*>(nghttp2_session_get_stream_user_data(c.session(), stream));
    if (!ex) return 0;
    ex->down_closed = true;
    if (ex->client_reset) {
      ex->entry.flags = "DR";  // the downstream reset the stream
      if (++client_resets_ * 2 > streams_opened_ && streams_opened_ >= kRapidResetMinStreams) {
        ctx_.log->Warn("http2: rapid reset, connection ended",
                       {{"downstream", EndpointString(ctx_.peer)}, {"streams", streams_opened_}, {"resets", client_resets_}});
        nghttp2_session_terminate_session(c.session(), NGHTTP2_ENHANCE_YOUR_CALM);
      }
    }
    LogAccess(ctx_, ex->entry);
    // Whatever either side still buffers is dropped, and acknowledged to whoever sent it, so
    // the connections' windows do not shrink by what a reset stream left behind.
    if (size_t left = ex->DropRequestBody()) nghttp2_session_consume(c.session(), ex->down_id, left);
    ex->response_body.Clear();
    pool_.Release(*ex);  // reset upstream when still open
    if (ex->h1 && !ex->h1_done) {
      if (ex->h1_socket && !ex->response_end) {  // the answer is not wanted any more
        boost::system::error_code ignored;
        CloseSocket(*ex->h1_socket, ignored);
      }
      ex->Wake();
      http1_freed_.cancel();  // in case it waits for a connection
    }
    if (ex->Finished()) Retire(*ex);
    return 0;
  }

  // --- the upstream streams' events (through Exchange) ---
  int UpField(Exchange& ex, std::string_view name, std::string_view value) {
    // Past the bounds the stream is reset (503 before the response, a reset after).
    if (ex.detached) return 0;
    return ex.answer.Add(name, value) ? 0 : NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  }

  void UpFrame(Exchange& ex, const nghttp2_frame& f) {
    if (ex.detached) return;
    if (f.hd.type == NGHTTP2_HEADERS && ex.answer.End() == AnswerHeaders::Block::kInterim) return;
    bool end = f.hd.flags & NGHTTP2_FLAG_END_STREAM;
    if (end) ex.response_end = true;
    if (f.hd.type == NGHTTP2_HEADERS && !ex.response_started && !ex.holding_answer) {
      if (!ex.down_closed && RetryOverHttp2(ex, AttemptFailure::kNone, ex.answer.status())) return;
      // A short body is received whole before the answer goes out, as over HTTP/1.1
      // (kHoldBytes): one that breaks off then reached nobody, and the attempt failed (503, or
      // another try); its try's deadline still holds.
      const auto length = ex.answer.content_length();
      if (!end && length && *length <= kHoldBytes) {
        ex.holding_answer = true;
        return;
      }
      if (!ex.down_closed) SubmitResponse(ex);
    } else if (ex.holding_answer && end) {
      ex.holding_answer = false;
      if (!ex.down_closed) SubmitResponse(ex);
    } else if (!ex.down_closed && end) {
      nghttp2_session_resume_data(down_->session(), ex.down_id);
      down_->Kick();
    }
  }

  void UpData(Exchange& ex, const uint8_t* data, size_t size) {
    if (ex.down_closed || ex.detached) {
      pool_.Consumed(ex, size);  // nobody will read it: acknowledged and dropped
      return;
    }
    ex.response_body.Append(data, size);
    nghttp2_session_resume_data(down_->session(), ex.down_id);
    down_->Kick();
  }

  void UpClosed(Exchange& ex, uint32_t error_code) {
    // Closed before its answer (a reset, REFUSED_STREAM): perhaps tried again.
    AttemptFailure failure = error_code == NGHTTP2_REFUSED_STREAM ? AttemptFailure::kRefusedStream : AttemptFailure::kReset;
    if (!ex.response_started && RetryOverHttp2(ex, failure, 0)) return;
    UpstreamOver(ex);
    if (!ex.detached) UpstreamEnded(ex, error_code != NGHTTP2_NO_ERROR);
    if (ex.Finished()) Retire(ex);
  }

  // The stream's connection failed (or never connected) while the stream was open.
  void UpLost(Exchange& ex, ConnectionLoss loss) {
    const char* flag = loss == ConnectionLoss::kConnectFailed ? "UF" : loss == ConnectionLoss::kProtocolError ? "UPE" : "UC";
    if (RetryOverHttp2(ex, FailureOf(flag), 0)) return;
    UpstreamOver(ex);
    UpstreamEnded(ex, true, flag);
    if (ex.Finished()) Retire(ex);
  }

  // The upstream will take no more of the request: what is left is acknowledged and dropped.
  void UpstreamOver(Exchange& ex) {
    if (size_t left = ex.DropRequestBody(); left && !ex.down_closed) {
      nghttp2_session_consume(down_->session(), ex.down_id, left);
      down_->Kick();
    }
  }

 private:
  // Room most requests' fields fit in: h2load and curl send 6 or 7, browsers more.
  static constexpr size_t kUsualFieldCount = 8;
  // Finished exchanges kept for reuse, with their map nodes: bounded, as a connection's
  // concurrent streams are.
  static constexpr size_t kMaxSpareExchanges = 16;
  // RFC 9113 6.9.2: a SETTINGS_INITIAL_WINDOW_SIZE that takes any stream's send window past
  // 2^31-1 is a connection error (FLOW_CONTROL_ERROR). nghttp2 answers it per stream with
  // RST_STREAM and leaves that stream's window as it was, so the largest window is noted as the
  // frame begins and the change it carries is checked against it once it is read.
  void NoteSendWindowsBeforeSettings(H2Connection& c) {
    initial_window_before_ = nghttp2_session_get_remote_settings(c.session(), NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE);
    largest_window_before_ = 0;
    for (const auto& [id, ex] : exchanges_) {
      largest_window_before_ = std::max<int64_t>(largest_window_before_, nghttp2_session_get_stream_remote_window_size(c.session(), id));
    }
  }
  bool SettingsOverflowAWindow(const nghttp2_settings& settings) const {
    for (size_t i = settings.niv; i-- > 0;) {  // the last value of a setting is the one that holds
      if (settings.iv[i].settings_id != NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE) continue;
      int64_t delta = static_cast<int64_t>(settings.iv[i].value) - initial_window_before_;
      return !exchanges_.empty() && largest_window_before_ + delta > NGHTTP2_MAX_WINDOW_SIZE;
    }
    return false;
  }

  using ExchangeMap = std::map<int32_t, std::unique_ptr<Exchange>>;

  // A new exchange for the client's stream `id`: a spare one when there is one.
  Exchange& Open(int32_t id) {
    if (spare_exchanges_.empty()) return *exchanges_.emplace(id, std::make_unique<Exchange>(*this)).first->second;
    ExchangeMap::node_type node = std::move(spare_exchanges_.back());
    spare_exchanges_.pop_back();
    node.key() = id;
    return *exchanges_.insert(std::move(node)).position->second;
  }
  // Nothing refers to `ex` any more: it goes (renewed) to the spares, or is destroyed.
  void Retire(Exchange& ex) {
    ExchangeMap::node_type node = exchanges_.extract(ex.down_id);
    if (node.empty() || spare_exchanges_.size() >= kMaxSpareExchanges) return;
    node.mapped()->Renew();
    spare_exchanges_.push_back(std::move(node));
  }

  // The request's headers are complete: route it and open its upstream stream.
  void Start(Exchange& ex) {
    ex.grpc = IsGrpcRequest(ex.request);  // before its fields move upstream
    if (ex.too_large) return Local(ex, 431, "request headers too large\n", "DPE");
    std::string_view method, path, authority, scheme = "http";
    headers_.clear();
    for (const auto& [name, value] : ex.request) {
      // Compared as views: a std::string against a literal costs a strlen and a memcmp each.
      const std::string_view n = name, v = value;
      if (n == ":method") method = v;
      else if (n == ":path") path = v;
      else if (n == ":authority") authority = v;
      else if (n == ":scheme") scheme = v;
      else if (n == "host" && authority.empty()) authority = v;
      if (n[0] != ':') headers_.emplace_back(n, v);
    }
    ex.entry.method = method;
    ex.entry.path = path;
    ex.entry.authority = authority;
    if (method == "CONNECT") return Local(ex, 501, "CONNECT is not proxied\n", "DPE");
    if (ctx_.draining && *ctx_.draining && !goaway_sent_) {
      // Shutting down: this stream is served, and the client told to open no more.
      goaway_sent_ = true;
      nghttp2_submit_goaway(down_->session(), NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(down_->session()),
                            NGHTTP2_NO_ERROR, nullptr, 0);
    }
    if (ctx_.inbound_limit && !ctx_.inbound_limit->TryTake()) return Local(ex, 429, "local_rate_limited\n", "RL");
    // Each stream routes by the newest snapshot; the exchange holds the one it started on while
    // it lives (its route, cluster and endpoints point into it).
    FollowCurrentSnapshot(ctx_);
    RouteDecision d;
    tcp::endpoint to;
    bool http2 = true;
    if (ctx_.inbound) {
      ex.entry.cluster = inbound_cluster_;
      to = ctx_.original;
      http2 = AppSpeaksHttp2(ctx_.app_protocol, true);
    } else {
      ex.table = ctx_.table;
      RequestView view{.method = method, .path = path, .authority = authority, .scheme = scheme, .headers = &headers_,
                       .source_labels = &ctx_.table->snapshot().workload.labels,
                       .port = static_cast<uint32_t>(ctx_.original.port()), .source_ip = peer_ip_};
      const VirtualHost* vh = authorities_.Find(*ctx_.table, authority, ctx_.original.port());
      if (!vh) vh = ctx_.host;
      d = Decide(vh, *ctx_.table, view, rng_, SteadyNowNs());
      if (d.route && d.route->spec) ex.entry.route = d.route->virtual_service;
      ex.entry.cluster = d.cluster_name;
      if (d.local_status && d.delay.count() > 0) {  // a fault's delay and abort both drawn: the delay first
        ex.abort_after_delay = Exchange::DelayedAbort{d.local_status, d.local_grpc_status, d.local_body, d.flags};
        ex.delayed = true;
        ++live_tasks_;
        asio::co_spawn(ex_, DelayThenForward(ex.down_id, d.delay), asio::detached);
        return;
      }
      if (d.local_status) return Local(ex, d.local_status, d.local_body, d.flags, d.location, d.local_grpc_status);
      if (!ex.in_flight.Enter(d.cluster)) return Local(ex, 503, AnswerFor("UO").body, "UO");
      to = d.endpoint ? ToEndpoint(*d.endpoint) : ctx_.original;  // PASSTHROUGH picks none
      ex.spec = d.route->spec;
      ex.picked = d.picked;
      ex.cluster = d.cluster;
      ex.endpoint = d.endpoint;
      ex.timeout = RouteTimeout(d.route);
      ex.retrier.emplace(&d.route->retry, d.cluster, ex.entry.method);
      ex.keep_body = ex.retrier->max_retries() > 0;
      ex.hash = d.hash;
      http2 = UpstreamSpeaksHttp2(*d.cluster, d.endpoint, true);
    }
    ex.entry.upstream = to;

    // The request as the upstream gets it: pseudo-headers first (rewritten), then the rest.
    Headers& out = ex.upstream_request;  // its room is kept from the exchange this one renews
    out.clear();
    out.reserve(ex.request.size() + 1);  // what the request had (less its Host), and room for one more
    std::string new_path(path), new_authority(authority);
    if (ex.spec && ex.spec->rewrite) {
      new_path = RewritePath(path, *d.route, *ex.spec->rewrite);
      if (ex.spec->rewrite->authority) new_authority = *ex.spec->rewrite->authority;
    }
    out.emplace_back(":method", method);
    out.emplace_back(":scheme", scheme);
    out.emplace_back(":authority", std::move(new_authority));
    out.emplace_back(":path", std::move(new_path));
    // The fields move over: the client's list serves nothing past this point (the pseudo-header
    // views above stay, those are not moved).
    for (auto& [n, v] : ex.request) {
      if (n[0] == ':' || std::string_view(n) == "host") continue;
      if (ctx_.inbound ? IsSteeringHeader(n) : IsClientCertHeader(n)) continue;
      out.emplace_back(std::move(n), std::move(v));
    }
    if (ex.spec) ApplyHeaderOps(out, ex.spec->headers.request);
    if (ex.picked && ex.picked->headers) ApplyHeaderOps(out, ex.picked->headers->request);

    if (d.mirror) Mirror(ex, d, out);  // a copy: `out` still goes upstream
    ex.to = to;
    ex.http2_upstream = http2;
    if (d.delay.count() > 0) {  // fault injection: the request waits, then goes on (flag DI)
      ex.entry.flags = "DI";
      ex.delayed = true;
      ++live_tasks_;
      asio::co_spawn(ex_, DelayThenForward(ex.down_id, d.delay), asio::detached);
      return;
    }
    Forward(ex);
  }

  Awaitable<void> DelayThenForward(int32_t down_id, std::chrono::milliseconds delay) {
    Timer timer(ex_, delay);
    co_await timer.async_wait(kNoThrow);
    // Looked up again: the client may have reset the stream meanwhile.
    auto it = exchanges_.find(down_id);
    if (it != exchanges_.end() && !it->second->down_closed) {
      Exchange& ex = *it->second;
      ex.delayed = false;
      if (auto abort = std::move(ex.abort_after_delay)) Local(ex, abort->status, abort->body, abort->flags, "", abort->grpc_status);
      else Forward(ex);
    }
    TaskDone();
  }

  // Sends the routed request upstream: its own coroutine for HTTP/1.1, a stream for HTTP/2.
  void Forward(Exchange& ex) {
    ex.load.emplace(ex.endpoint);
    // The route's timeout: one deadline for every try, from the first.
    if (ex.timeout && ex.give_up == std::chrono::steady_clock::time_point::max()) {
      ex.give_up = std::chrono::steady_clock::now() + *ex.timeout;
    }
    if (!ex.http2_upstream) {
      ex.h1 = true;
      if (!ex.wake) ex.wake.emplace(ex_);
      ++live_tasks_;
      asio::co_spawn(ex_, ForwardHttp1(&ex, ex.to), asio::detached);
      return;
    }
    // A body may already be waiting (it came during a fault delay).
    bool no_body = ex.request_end && ex.request_body.size() == 0 && ex.request_trailers.empty();
    ++ex.tries;  // before the stream opens: its connection may be up at once (UpConnected)
    ex.try_clock = false;
    if (const char* refused = pool_.Open(ex, ex.to, ctx_.inbound ? nullptr : ex.cluster, ctx_.inbound, ctx_.connect_timeout,
                                         ex.upstream_request, !no_body)) {
      return Local(ex, 503, AnswerFor(refused).body, refused);
    }
    // Until the connection is up only the route's timeout holds (the connect has its own).
    if (!ex.try_clock) ArmDeadline(ex, ex.give_up);
  }

  // The try's stream is on a connection that is up: its deadline is its perTryTimeout, within
  // the route's timeout.
  void UpConnected(Exchange& ex) {
    if (ex.detached || ex.response_started || ex.try_clock) return;
    ex.try_clock = true;
    ArmDeadline(ex, ex.retrier ? ex.retrier->TryDeadline(ex.give_up) : ex.give_up);
  }

  void ArmDeadline(Exchange& ex, std::chrono::steady_clock::time_point until) {
    if (until == std::chrono::steady_clock::time_point::max()) return;
    ex.deadline = std::make_unique<Timer>(ex_, until);  // an earlier one is let go (its wait ends aborted)
    ++live_tasks_;
    asio::co_spawn(ex_, AnswerDeadline(ex.deadline.get(), ex.down_id, ex.tries), asio::detached);
  }

  // An HTTP/2 upstream stream failed before its answer reached the client, or answered with a
  // retriable status: when the route's retries allow, the stream is let go and the request is
  // sent again (its kept body first) on another endpoint after the backoff. False: the
  // failure stands.
  bool RetryOverHttp2(Exchange& ex, AttemptFailure failure, unsigned status) {
    if (ex.down_closed || ex.h1 || ex.detached || ex.response_started || !ex.retrier) return false;
    std::optional<int> grpc_status = failure == AttemptFailure::kNone ? ex.answer.grpc_status() : std::nullopt;
    if (!ex.retrier->Again(failure, status, !ex.kept_overflow, ex.give_up, ex.entry.flags, grpc_status)) return false;
    RecordAttempt(ex.cluster, ex.endpoint, failure, status);
    // The stream is let go (reset when still open); what it sent of an answer is dropped, and
    // what it still sends finds no exchange.
    pool_.Release(ex);
    ex.response_body.Clear();
    // A deadline of this try that fired already (its completion queued) must not count: the
    // next try is another.
    if (ex.deadline) ex.deadline->cancel();
    ++ex.tries;
    ex.answer = AnswerHeaders{};
    ex.holding_answer = false;
    ex.response_end = false;
    Requeue(ex);
    ex.delayed = true;  // the client's DATA meanwhile is kept, as during a fault delay
    ++live_tasks_;
    asio::co_spawn(ex_, RetryAfter(ex.down_id, ex.retrier->Backoff(rng_, ex.give_up)), asio::detached);
    return true;
  }

  Awaitable<void> RetryAfter(int32_t down_id, std::chrono::milliseconds backoff) {
    Timer timer(ex_, backoff);
    co_await timer.async_wait(kNoThrow);
    auto it = exchanges_.find(down_id);  // the client may have reset the stream meanwhile
    if (it != exchanges_.end() && !it->second->down_closed && !it->second->detached) {
      Exchange& ex = *it->second;
      ex.delayed = false;
      if (const UpstreamEndpoint* next = RetryEndpoint(ex.cluster, ex.hash, ex.endpoint, true, rng_, SteadyNowNs())) {
        ex.endpoint = next;
        ex.to = ToEndpoint(*next);
        ex.entry.upstream = ex.to;
      }
      Forward(ex);
    }
    TaskDone();
  }

  // A copy of the request for the route's mirror (see ShadowRequest), sent once the request is
  // complete; a body over kMaxMirroredBody is not mirrored.
  void Mirror(Exchange& ex, const RouteDecision& d, Headers request) {
    ex.mirror = std::make_unique<Exchange::PendingMirror>();
    ex.mirror->cluster = d.mirror;
    ex.mirror->request = std::move(request);
    if (ex.request_end) FlushMirror(ex);
  }

  void MirrorBody(Exchange& ex, const uint8_t* data, size_t size) {
    if (ex.mirror->body.size() + size > kMaxMirroredBody) {
      ex.mirror.reset();  // too big to copy: this request is not mirrored
      return;
    }
    ex.mirror->body.append(reinterpret_cast<const char*>(data), size);
  }

  void FlushMirror(Exchange& ex) {
    const auto& m = *ex.mirror;
    std::string_view method, path, authority;
    std::vector<std::pair<std::string_view, std::string_view>> fields;
    for (const auto& [name, value] : m.request) {
      const std::string_view n = name, v = value;
      if (n == ":method") method = v;
      else if (n == ":path") path = v;
      else if (n == ":authority") authority = v;
      else fields.emplace_back(n, v);
    }
    SendMirror(ex_, *m.cluster, rng_(), ShadowRequest(method, path, authority, fields, m.body), ctx_.connect_timeout);
    ex.mirror.reset();
  }

  // The route's timeout for an HTTP/2 upstream: no answer in time gives 504 (UT) and resets the
  // upstream stream. The timer dies with its exchange (the wait then ends aborted, touching nothing).
  Awaitable<void> AnswerDeadline(Timer* timer, int32_t down_id, int try_number) {
    auto [ec] = co_await timer->async_wait(kNoThrow);
    // Counted in live_tasks_: the bridge outlives this, even when its completion was queued
    // before the exchange (and the timer) went away; the exchange is looked up again, and a
    // deadline of an earlier try is ignored.
    auto it = ec ? exchanges_.end() : exchanges_.find(down_id);
    if (it != exchanges_.end() && it->second->tries == try_number && !it->second->response_started &&
        !it->second->down_closed && !it->second->detached) {
      Exchange& ex = *it->second;
      // A perTryTimeout before the route's: perhaps tried again.
      if (std::chrono::steady_clock::now() < ex.give_up && RetryOverHttp2(ex, AttemptFailure::kTimeout, 0)) {
        TaskDone();
        co_return;
      }
      pool_.Release(ex);  // reset
      RecordAttempt(ex.cluster, ex.endpoint, AttemptFailure::kTimeout, 0);
      Local(ex, 504, AnswerFor("UT").body, "UT");
    }
    TaskDone();
  }

  // --- HTTP/1.1 upstreams ---
  static constexpr int kMaxHttp1PerEndpoint = 16;
  static constexpr size_t kHttp1ResponseBuffer = 256 * 1024;  // read no further ahead of the client
  static constexpr size_t kKeptHeadBytes = 4096;  // an upstream connection's request head room, kept

  // One stream to an HTTP/1.1 upstream, with the route's retries (retry_policy.h): a connect
  // failure, reset, per-try timeout or retriable status before the answer reached the client
  // is tried again on another endpoint after a backoff, the body resent from its kept copy.
  Awaitable<void> ForwardHttp1(Exchange* ex, tcp::endpoint to) {
    using Clock = std::chrono::steady_clock;
    const Headers& request = ex->upstream_request;  // the exchange outlives this coroutine
    const auto give_up = ex->give_up;
    if (!ex->retrier) ex->retrier.emplace(nullptr, nullptr, ex->entry.method);  // inbound: no retries
    Retrier& retrier = *ex->retrier;
    const char* failure = nullptr;
    std::unique_ptr<Http1Conn> conn;
    bool keep = false, stale_replaced = false;
    // Whether an answer with `status` is dropped for a retry. The answers relayed are recorded
    // for outlier detection as they go out (SubmitResponse).
    auto retry_answer = [&](unsigned status) {
      if (!retrier.Again(AttemptFailure::kNone, status, !ex->kept_overflow, give_up, ex->entry.flags)) return false;
      RecordAttempt(ex->cluster, ex->endpoint, AttemptFailure::kNone, status);
      return true;
    };
    int* held = nullptr;  // this stream's count in http1_busy_ while it holds one (map entries stay put)
    for (int round = 0; round <= retrier.max_retries() + 1 && !ex->down_closed; ++round) {
      // At most kMaxHttp1PerEndpoint of this client's streams hold a connection to one endpoint:
      // a client multiplexing a hundred streams must not open a hundred connections at once (a
      // small accept backlog drops them). Streams past it wait, in no particular order.
      int& busy = http1_busy_[to];
      while (busy >= kMaxHttp1PerEndpoint && !ex->down_closed) {
        // Only waits: re-arming the shared timer would cancel the other waiters (who would
        // re-arm it in turn). Its expiry stays at max; cancel() wakes them all.
        co_await http1_freed_.async_wait(kNoThrow);
      }
      if (ex->down_closed) break;
      held = &busy;
      ++*held;
      const Cluster* cluster = ctx_.inbound ? nullptr : ex->cluster;
      Http1Pool::Lease lease{ctx_.http1_pool->TakeIdle(to, cluster)};
      if (!lease.conn) {
        auto wait_until = std::min(give_up, Clock::now() + ctx_.connect_timeout);
        lease = co_await ctx_.http1_pool->Acquire(to, cluster, ctx_.inbound, ctx_.connect_timeout, wait_until);
      }
      conn = std::move(lease.conn);
      failure = lease.failure;
      bool reused = conn && conn->reused;
      if (conn && !ex->down_closed) {
        ex->h1_socket = &conn->socket;
        failure = co_await Http1Exchange(*ex, *conn, request, &keep, retrier.TryDeadline(give_up), retry_answer);
        ex->h1_socket = nullptr;
      }
      if (!failure || ex->down_closed) break;
      const std::string_view f(failure);
      if (f == "UO" || ex->response_started) break;  // never retried
      const bool answered = f == kRetriableAnswer;  // Again said so already
      const AttemptFailure kind = answered ? AttemptFailure::kNone : FailureOf(f);
      const bool replayable = !ex->kept_overflow;
      // A kept-alive connection the upstream had closed meanwhile: replaced once, unseen.
      bool stale = reused && kind == AttemptFailure::kReset && replayable && IsIdempotent(ex->entry.method) && !stale_replaced;
      bool again = stale || answered;
      if (!again) {
        again = retrier.Again(kind, 0, replayable, give_up, ex->entry.flags);
        if (again) RecordAttempt(ex->cluster, ex->endpoint, kind, 0);  // the last failure: UpstreamEnded records it
      }
      if (!again) break;
      // A connect that failed (or was refused by the limits) made no connection to give back.
      if (conn) ctx_.http1_pool->Release(std::move(conn), false);
      --*std::exchange(held, nullptr);
      http1_freed_.cancel();
      Requeue(*ex);
      if (stale) {
        stale_replaced = true;
        --round;
        continue;
      }
      Timer backoff(ex_, retrier.Backoff(rng_, give_up));
      co_await backoff.async_wait(kNoThrow);
      if (const UpstreamEndpoint* next = RetryEndpoint(ex->cluster, ex->hash, ex->endpoint, true, rng_, SteadyNowNs())) {
        ex->endpoint = next;
        ex->load.emplace(next);
        to = ToEndpoint(*next);
        ex->entry.upstream = to;
      }
    }
    if (failure && std::string_view(failure) == kRetriableAnswer) failure = "UC";  // unreachable: a dropped answer is retried
    ex->h1_done = true;
    if (size_t fresh = ex->DropRequestBody()) {
      nghttp2_session_consume(down_->session(), ex->down_id, fresh);
      down_->Kick();
    }
    if (failure) UpstreamEnded(*ex, true, failure);
    if (conn) ctx_.http1_pool->Release(std::move(conn), keep);
    if (held) --*held;
    http1_freed_.cancel();
    if (ex->Finished()) Retire(*ex);
    TaskDone();
  }

  // The body sent so far goes back to the front of the queue, to be sent again; the client's
  // window was credited for it already.
  static void Requeue(Exchange& ex) {
    std::string rest(ex.request_body.size(), '\0');
    ex.request_body.Take(reinterpret_cast<uint8_t*>(rest.data()), rest.size());
    ex.request_body.Clear();
    ex.acknowledged_prefix += ex.kept_body.size();  // what of the last prefix was not resent stays credited
    ex.request_body.Append(ex.kept_body);
    ex.request_body.Append(rest);
    ex.kept_body.clear();
  }

  Awaitable<void> WaitFor(Exchange& ex) {
    ex.wake->expires_at(Timer::time_point::max());
    co_await ex.wake->async_wait(kNoThrow);
  }

  // One request and its answer over HTTP/1.1; the flags of a failure, null once answered, or
  // kRetriableAnswer when `retry_answer` wanted the answer dropped (nothing reached the client).
  template <class RetryAnswer>
  Awaitable<const char*> Http1Exchange(Exchange& ex, Http1Conn& conn, const Headers& request, bool* keep,
                                             std::chrono::steady_clock::time_point try_until, RetryAnswer& retry_answer) {
    Socket& s = conn.socket;
    std::string_view method, path, authority;
    bool has_length = false;
    // The head is sized first and written in one allocation.
    size_t size = sizeof(" HTTP/1.1\r\nhost: \r\ntransfer-encoding: chunked\r\n\r\n");
    for (const auto& [name, value] : request) {
      const std::string_view n = name, v = value;
      if (n == ":method") method = v;
      else if (n == ":path") path = v;
      else if (n == ":authority") authority = v;
      size += n.size() + v.size() + 4;
    }
    std::string& head = conn.request_head;  // the connection's: no allocation once it has room
    head.clear();
    head.reserve(size);
    using namespace std::string_view_literals;
    head.append(method).append(" "sv).append(path).append(" HTTP/1.1\r\nhost: "sv).append(authority).append("\r\n"sv);
    for (const auto& [name, value] : request) {
      const std::string_view n = name;
      if (n[0] == ':' || IsHopByHop(n)) continue;
      has_length |= n == "content-length";
      head.append(n).append(": "sv).append(value).append("\r\n"sv);
    }
    // Framing: the client's length, else none for an empty body, else chunked as it streams.
    bool chunked = false;
    if (!has_length) {
      if (!(ex.request_end && ex.request_body.size() == 0)) {
        chunked = true;
        head += "transfer-encoding: chunked\r\n"sv;
      } else if (method == "POST" || method == "PUT" || method == "PATCH") {
        head += "content-length: 0\r\n"sv;
      }
    }
    head += "\r\n";
    asio::const_buffer whole = asio::buffer(head);
    if (co_await WriteGather(s, {&whole, 1})) co_return ex.down_closed ? nullptr : "UC";
    if (head.capacity() > kKeptHeadBytes) std::string().swap(head);  // an idle connection keeps no large head
    // The body relay buffer: uninitialized (zeroing 16 KiB per request was a quarter of the
    // HTTP/2 path's instructions).
    SpareChunk chunk;
    for (;;) {
      size_t n = ex.request_body.Take(chunk.get(), kChunk);
      if (n > 0) {
        char size_line[20];
        std::array<asio::const_buffer, 3> parts{asio::buffer(size_line, chunked ? ChunkHeader(n, size_line) : 0),
                                                asio::buffer(chunk.get(), n), asio::buffer(kCrlf.data(), chunked ? 2 : 0)};
        auto [wec, wn] = co_await asio::async_write(s, parts, kNoThrow);
        if (wec) co_return ex.down_closed ? nullptr : "UC";
        // Kept for a retry; the client's window opens only for bytes it was not credited for.
        if (size_t fresh = ex.Sent(chunk.get(), n)) {
          nghttp2_session_consume(down_->session(), ex.down_id, fresh);
          down_->Kick();
        }
        continue;
      }
      if (ex.request_end) break;
      if (ex.down_closed) co_return nullptr;  // the client gave up mid-request
      co_await WaitFor(ex);
    }
    if (chunked && co_await WriteAll(s, kLastChunk)) co_return ex.down_closed ? nullptr : "UC";

    boost::beast::flat_buffer& buf = conn.buffer;
    Http1Head& res = conn.answer_head;  // the connection's: its storage is reused answer after answer
    for (int interim = 0;; ++interim) {  // 1xx answers (but 101) are interim: skipped, a bounded number
      if (try_until != std::chrono::steady_clock::time_point::max()) conn.Arm(try_until);
      size_t length = 0;
      boost::system::error_code rec = co_await ReadRawHeader(s, buf, kMaxHeaderBytes, length);
      if (conn.Disarm() && rec) co_return ex.down_closed ? nullptr : "UT";  // the deadline cut the read
      if (ex.down_closed) co_return nullptr;
      if (rec) {
        const bool garbage = rec == boost::beast::http::error::header_limit || rec == boost::beast::http::error::bad_line_ending;
        co_return garbage ? "UPE" : "UC";
      }
      const char* problem = res.ParseResponse({static_cast<const char*>(buf.data().data()), length}, method == "HEAD");
      buf.consume(length);
      if (problem) co_return "UPE";
      if (res.status >= 200 || res.status == 101) break;
      if (interim == kMaxInterimAnswers) co_return "UPE";
    }
    if (!ex.down_closed && retry_answer(res.status)) co_return kRetriableAnswer;
    ex.answer.response.clear();
    ex.answer.response.reserve(res.fields.size() + 1);
    ex.answer.response.emplace_back(":status", std::to_string(res.status));
    for (const auto& f : res.fields) {
      auto& [name, value] = ex.answer.response.emplace_back(f.name, f.value);
      for (char& c : name) c = AsciiLower(c);  // HTTP/2 field names are lowercase
      if (IsConnectionSpecific(name)) ex.answer.response.pop_back();
    }
    BodyDecoder body;
    body.Start(res.framing, res.content_length);
    // A short body is read whole before the answer goes out, as over HTTP/1.1 (kHoldBytes): one
    // that breaks off then reached nobody, and the attempt failed (503, or another try).
    // The try's deadline still holds while it is read: a body that stalls is a timeout (UT).
    if (res.framing == BodyFraming::kLength && res.content_length <= kHoldBytes) {
      if (try_until != std::chrono::steady_clock::time_point::max()) conn.Arm(try_until);
      while (!body.done() && !ex.down_closed) {
        const std::span<char> room{reinterpret_cast<char*>(chunk.get()), kChunk};
        BodyRead r = TakeBufferedBody(buf, body, room);
        if (!r.error && r.n == 0 && !body.done()) r = co_await ReadBody(s, buf, body, room);
        if (r.error) {
          ex.response_body.Clear();
          const bool timed_out = conn.Disarm();
          co_return ex.down_closed ? nullptr : timed_out ? "UT" : "UC";
        }
        ex.response_body.Append(chunk.get(), r.n);
      }
      conn.Disarm();
    }
    ex.response_end = body.done();
    if (ex.down_closed) co_return nullptr;
    SubmitResponse(ex);
    while (!body.done()) {
      if (ex.down_closed) co_return nullptr;
      if (ex.response_body.size() >= kHttp1ResponseBuffer) {
        co_await WaitFor(ex);
        continue;
      }
      const std::span<char> room{reinterpret_cast<char*>(chunk.get()), kChunk};
      BodyRead r = TakeBufferedBody(buf, body, room);
      if (!r.error && r.n == 0 && !body.done()) r = co_await ReadBody(s, buf, body, room);
      if (r.error) co_return ex.down_closed ? nullptr : "UPE";
      ex.response_body.Append(chunk.get(), r.n);
      if (body.done()) ex.response_end = true;
      if (!ex.down_closed) {
        nghttp2_session_resume_data(down_->session(), ex.down_id);
        down_->Kick();
      }
    }
    ex.response_end = true;
    if (!ex.down_closed) {
      nghttp2_session_resume_data(down_->session(), ex.down_id);
      down_->Kick();
    }
    // False too when the body ended with the connection, or bytes follow the answer.
    *keep = res.keep_alive && res.status != 101 && buf.size() == 0;
    co_return nullptr;
  }

  // A background task (an upstream connection, an HTTP/1.1 forwarder, a deadline) has ended;
  // Serve waits for the last before the bridge goes away.
  void TaskDone() {
    if (--live_tasks_ == 0) tasks_done_.cancel();
  }

  // The upstream stream is over. Before the response: the client gets 503. After it began but
  // before its end: the client's stream is reset (never a truncated answer presented as whole).
  void UpstreamEnded(Exchange& ex, bool failed, const char* flags = "UC") {
    if (ex.down_closed) return;
    if (!ex.response_started) {
      FailureAnswer answer = AnswerFor(flags);
      if (std::string_view(flags) != "UO") RecordAttempt(ex.cluster, ex.endpoint, FailureOf(flags), answer.status);  // UO: not the endpoint's
      Local(ex, answer.status, answer.body, flags);
    } else if (failed && !ex.response_end) {
      ex.entry.flags = "UPE";
      nghttp2_submit_rst_stream(down_->session(), NGHTTP2_FLAG_NONE, ex.down_id, NGHTTP2_INTERNAL_ERROR);
      down_->Kick();
    }
  }

  void SubmitResponse(Exchange& ex) {
    ex.response_started = true;
    // Edited in place: the answer's headers serve nothing else once they are submitted.
    Headers& out = ex.answer.response;
    for (auto& [n, v] : out) {
      if (std::string_view(n) == ":status") ex.entry.code = static_cast<unsigned>(std::atoi(v.c_str()));
    }
    if (!ex.detached) RecordAttempt(ex.cluster, ex.endpoint, AttemptFailure::kNone, ex.entry.code);
    if (ex.spec) ApplyHeaderOps(out, ex.spec->headers.response);
    if (ex.picked && ex.picked->headers) ApplyHeaderOps(out, ex.picked->headers->response);
    NameValues nva(out);
    nghttp2_data_provider body{.source = {.ptr = &ex}, .read_callback = &Bridge::ReadResponseBody};
    bool no_body = ex.response_end && ex.response_body.size() == 0 && ex.answer.trailers.empty();
    nghttp2_submit_response(down_->session(), ex.down_id, nva.data(), nva.size(), no_body ? nullptr : &body);
    down_->Kick();
  }

  // The proxy's own answer; with `grpc_status`, gRPC's trailers-only form (HTTP 200, the status
  // in the one header block).
  void Local(Exchange& ex, unsigned status, const std::string& body, const char* flags, const std::string& location = "",
             std::optional<int> grpc_status = std::nullopt) {
    ex.detached = true;
    ex.delayed = false;  // no try is coming: the client's DATA is acknowledged and dropped,
    UpstreamOver(ex);    // what of it is buffered already too
    AddFlag(ex.entry.flags, flags);
    // A gRPC call gets the proxy's own answers in gRPC's form, as Envoy gives them: HTTP 200,
    // the status in the one header block (trailers-only), the reason as its grpc-message.
    std::string grpc_message = grpc_status ? "fault filter abort" : "";
    if (!grpc_status && location.empty() && ex.grpc) {
      grpc_status = GrpcStatusForHttp(status);
      grpc_message = body.substr(0, body.find('\n'));
      status = 200;
    }
    ex.answer.response = {{":status", std::to_string(status)}, {"server", "tern"},
                          {"content-type", grpc_status ? "application/grpc" : "text/plain"}};
    if (grpc_status) {
      ex.answer.response.emplace_back("grpc-status", std::to_string(*grpc_status));
      ex.answer.response.emplace_back("grpc-message", grpc_message);
    }
    if (!location.empty()) ex.answer.response.emplace_back("location", location);
    if (!grpc_status) ex.response_body.Append(body);
    ex.response_end = true;
    ex.spec = nullptr;
    ex.picked = nullptr;
    SubmitResponse(ex);
  }

  // Data providers: what one side received, written on the other; the receiving side's window
  // is opened by as much as was taken.
  ssize_t ReadRequestBody(Exchange& ex, nghttp2_session* upstream, uint8_t* buf, size_t length, uint32_t* flags) {
    size_t n = ex.request_body.Take(buf, length);
    // Kept for a retry; credits the connection's window even once the client's stream is closed.
    if (size_t fresh = n > 0 ? ex.Sent(buf, n) : 0) {
      nghttp2_session_consume(down_->session(), ex.down_id, fresh);
      down_->Kick();
    }
    if (ex.request_body.size() == 0) {
      if (!ex.request_end) return n > 0 ? static_cast<ssize_t>(n) : static_cast<ssize_t>(NGHTTP2_ERR_DEFERRED);
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (!ex.request_trailers.empty()) {
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        NameValues nva(ex.request_trailers);
        nghttp2_submit_trailer(upstream, ex.id(), nva.data(), nva.size());
      }
    }
    return static_cast<ssize_t>(n);
  }

  static ssize_t ReadResponseBody(nghttp2_session* session, int32_t stream, uint8_t* buf, size_t length, uint32_t* flags,
                                  nghttp2_data_source* source, void*) {
    auto& ex = *static_cast<Exchange*>(source->ptr);
    size_t n = ex.response_body.Take(buf, length);
    if (n > 0 && ex.h1) ex.Wake();  // room for more of the HTTP/1.1 answer
    // Bytes that came from an HTTP/2 upstream are acknowledged to it (to its connection once its
    // stream is closed); a local answer's bytes came from nowhere.
    if (n > 0 && !ex.detached) ex.bridge.pool_.Consumed(ex, n);
    if (ex.response_body.size() == 0) {
      if (!ex.response_end) return n > 0 ? static_cast<ssize_t>(n) : static_cast<ssize_t>(NGHTTP2_ERR_DEFERRED);
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (!ex.answer.trailers.empty()) {
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        NameValues nva(ex.answer.trailers);
        nghttp2_submit_trailer(session, stream, nva.data(), nva.size());
      }
    }
    return static_cast<ssize_t>(n);
  }

  HttpContext ctx_;
  Executor ex_;
  std::unique_ptr<H2Connection> down_;
  H2UpstreamPool& pool_;  // the worker's HTTP/2 upstream connections
  std::map<tcp::endpoint, int> http1_busy_;  // HTTP/1.1 upstream connections this client's streams hold
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

int Exchange::OnAnswerField(std::string_view name, std::string_view value) { return bridge.UpField(*this, name, value); }
void Exchange::OnAnswerFrame(const nghttp2_frame& frame) { bridge.UpFrame(*this, frame); }
void Exchange::OnAnswerData(const uint8_t* data, size_t size) { bridge.UpData(*this, data, size); }
void Exchange::OnClosed(uint32_t error_code) { bridge.UpClosed(*this, error_code); }
void Exchange::OnConnected() { bridge.UpConnected(*this); }
void Exchange::OnConnectionLost(ConnectionLoss loss) { bridge.UpLost(*this, loss); }
ssize_t Exchange::ReadRequestBody(nghttp2_session* session, uint8_t* buf, size_t length, uint32_t* flags) {
  return bridge.ReadRequestBody(*this, session, buf, length, flags);
}

}  // namespace

Awaitable<void> ServeHttp2(Socket downstream, std::string head, HttpContext ctx) {
  Bridge bridge(std::move(downstream), std::move(ctx));
  co_await bridge.Serve(std::move(head));
}

}  // namespace tern::proxy
