#include "proxy/http2_session.h"

#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <optional>
#include <memory>
#include <vector>

#include "proxy/h2_bridge.h"
#include "proxy/header_limits.h"
#include "proxy/log_escaped.h"
#include "proxy/mesh_headers.h"
#include "proxy/batched_send.h"

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

}  // namespace

void H2Exchange::Renew() {
  H2Bridge& b = bridge;
  Headers fields = std::move(request), answer_fields = std::move(answer.response), upstream = std::move(upstream_request);
  ByteQueue in = std::move(request_body), out = std::move(response_body);
  this->~H2Exchange();
  new (this) H2Exchange(b);
  request = std::move(fields);
  request.clear();
  answer.response = std::move(answer_fields);
  answer.response.clear();
  upstream_request = std::move(upstream);
  upstream_request.clear();
  request_body = std::move(in);
  request_body.Clear();
  response_body = std::move(out);
  response_body.Clear();
}

void H2Exchange::Quiesce() {
  deadline.reset();
  if (request_body.capacity() > kKeptQueueBytes) request_body = ByteQueue();
  if (response_body.capacity() > kKeptQueueBytes) response_body = ByteQueue();
}

H2Bridge::H2Bridge(Socket socket, HttpContext ctx)
    : ctx_(std::move(ctx)),
      ex_(socket.get_executor()),
      down_(std::make_unique<H2Connection>(std::move(socket), H2Connection::Role::kServer, *this)),
      pool_(*ctx_.h2_pool),
      tasks_done_(ex_),
      inbound_cluster_("inbound|" + std::to_string(ctx_.original.port()) + "||"),
      peer_ip_(ctx_.peer.address().to_string()) {}

Awaitable<void> H2Bridge::Serve(std::string head) {
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
    ex->ClientClosed();
    ex->Wake();
  }
  http1_freed_.cancel();
  while (live_tasks_ > 0) {
    tasks_done_.expires_at(Timer::time_point::max());
    co_await tasks_done_.async_wait(kNoThrow);
  }
}

int H2Bridge::OnBeginFrame(H2Connection& c, const nghttp2_frame_hd& hd) {
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

int H2Bridge::OnBeginHeaders(H2Connection& c, const nghttp2_frame& f) {
  if (f.headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  H2Exchange& ex = Open(f.hd.stream_id);
  ex.entry.start = std::chrono::steady_clock::now();  // a spare was built when its last stream ended
  ex.down_id = f.hd.stream_id;
  ex.entry.protocol = "HTTP/2";
  ex.request.reserve(kUsualFieldCount);  // one allocation for most requests' fields
  nghttp2_session_set_stream_user_data(c.session(), f.hd.stream_id, &ex);
  ++streams_opened_;
  return 0;
}

int H2Bridge::OnHeader(H2Connection& c, const nghttp2_frame& f, std::string_view name, std::string_view value) {
  if (f.hd.type != NGHTTP2_HEADERS) return 0;
  auto* ex = static_cast<H2Exchange*>(nghttp2_session_get_stream_user_data(c.session(), f.hd.stream_id));
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

int H2Bridge::OnFrameRecv(H2Connection& c, const nghttp2_frame& f) {
  if (f.hd.type == NGHTTP2_SETTINGS && !(f.hd.flags & NGHTTP2_FLAG_ACK) && SettingsOverflowAWindow(f.settings)) {
    ctx_.log->Warn("http2: SETTINGS_INITIAL_WINDOW_SIZE overflows a stream's window, connection ended",
                   {{"downstream", EndpointString(ctx_.peer)}});
    nghttp2_session_terminate_session(c.session(), NGHTTP2_FLOW_CONTROL_ERROR);
    return 0;
  }
  auto* ex = f.hd.stream_id ? static_cast<H2Exchange*>(nghttp2_session_get_stream_user_data(c.session(), f.hd.stream_id))
                            : nullptr;
  bool end = f.hd.flags & NGHTTP2_FLAG_END_STREAM;
  if (f.hd.type == NGHTTP2_RST_STREAM && ex && !ex->response_end) ex->client_reset = true;
  if (!ex || (f.hd.type != NGHTTP2_HEADERS && f.hd.type != NGHTTP2_DATA)) return 0;
  if (end) ex->ClientEnded();
  if (f.hd.type == NGHTTP2_HEADERS && f.headers.cat == NGHTTP2_HCAT_REQUEST) {
    Start(*ex);
    return 0;
  }
  if (end && ex->mirror) FlushMirror(*ex);
  if (end) RequestEnded(*ex);
  if (ex->open() && end) pool_.Resume(*ex);
  else if (end) ex->Wake();
  return 0;
}

int H2Bridge::OnData(H2Connection& c, int32_t stream, const uint8_t* data, size_t size) {
  auto* ex = static_cast<H2Exchange*>(nghttp2_session_get_stream_user_data(c.session(), stream));
  if (ex && ex->mirror) MirrorBody(*ex, data, size);
  if (ex && ((ex->h1 && !ex->h1_done) || ex->up == H2Exchange::Up::kDelayed)) {
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

int H2Bridge::OnStreamClose(H2Connection& c, int32_t stream, uint32_t /*error_code*/) {
  auto* ex = static_cast<H2Exchange*>(nghttp2_session_get_stream_user_data(c.session(), stream));
  if (!ex) return 0;
  ex->ClientClosed();
  if (ex->client_reset) {
    ex->entry.flags |= ResponseFlag::kDownstreamRemoteReset;
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

void H2Bridge::UpstreamOver(H2Exchange& ex) {
  if (size_t left = ex.DropRequestBody(); left && !ex.down_closed()) {
    nghttp2_session_consume(down_->session(), ex.down_id, left);
    down_->Kick();
  }
}

void H2Bridge::NoteSendWindowsBeforeSettings(H2Connection& c) {
  initial_window_before_ = nghttp2_session_get_remote_settings(c.session(), NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE);
  largest_window_before_ = 0;
  for (const auto& [id, ex] : exchanges_) {
    largest_window_before_ = std::max<int64_t>(largest_window_before_, nghttp2_session_get_stream_remote_window_size(c.session(), id));
  }
}

bool H2Bridge::SettingsOverflowAWindow(const nghttp2_settings& settings) const {
  for (size_t i = settings.niv; i-- > 0;) {  // the last value of a setting is the one that holds
    if (settings.iv[i].settings_id != NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE) continue;
    int64_t delta = static_cast<int64_t>(settings.iv[i].value) - initial_window_before_;
    return !exchanges_.empty() && largest_window_before_ + delta > NGHTTP2_MAX_WINDOW_SIZE;
  }
  return false;
}

H2Exchange& H2Bridge::Open(int32_t id) {
  if (spare_exchanges_.size() > kMaxSpareExchanges) spare_exchanges_.resize(kMaxSpareExchanges);
  if (spare_exchanges_.empty()) return *exchanges_.emplace(id, std::make_unique<H2Exchange>(*this)).first->second;
  ExchangeMap::node_type node = std::move(spare_exchanges_.back());
  spare_exchanges_.pop_back();
  node.key() = id;
  node.mapped()->Renew();
  return *exchanges_.insert(std::move(node)).position->second;
}

void H2Bridge::Retire(H2Exchange& ex) {
  // Kept, not destroyed: this may run within one of the exchange's own calls (its upstream
  // stream's close). Open renews it, and trims the spares past kMaxSpareExchanges.
  ExchangeMap::node_type node = exchanges_.extract(ex.down_id);
  if (node.empty()) return;
  node.mapped()->Quiesce();
  spare_exchanges_.push_back(std::move(node));
}

void H2Bridge::Start(H2Exchange& ex) {
  ex.grpc = IsGrpcRequest(ex.request);  // before its fields move upstream
  if (ex.too_large) return Local(ex, 431, "request headers too large\n", ResponseFlag::kDownstreamProtocolError);
  std::string_view method, path, authority, scheme = "http", protocol;
  headers_.clear();
  for (const auto& [name, value] : ex.request) {
    // Compared as views: a std::string against a literal costs a strlen and a memcmp each.
    const std::string_view n = name, v = value;
    if (n == ":method") method = v;
    else if (n == ":protocol") protocol = v;
    else if (n == ":path") path = v;
    else if (n == ":authority") authority = v;
    else if (n == ":scheme") scheme = v;
    else if (n == "host" && authority.empty()) authority = v;
    if (n[0] != ':') headers_.emplace_back(n, v);
  }
  ex.entry.method = method;
  ex.entry.path = path;
  ex.entry.authority = authority;
  // A WebSocket over HTTP/2 (RFC 8441) is routed as the GET its HTTP/1.1 upgrade is; any other
  // CONNECT (a plain tunnel, another protocol) is not proxied, as over HTTP/1.1.
  ex.tunnel = method == "CONNECT" && AsciiIEquals(protocol, "websocket");
  if (ex.tunnel) method = "GET";
  else if (method == "CONNECT") return Local(ex, 501, "CONNECT is not proxied\n", ResponseFlag::kDownstreamProtocolError);
  if (ctx_.draining && *ctx_.draining && !goaway_sent_) {
    // Shutting down: this stream is served, and the client told to open no more.
    goaway_sent_ = true;
    nghttp2_submit_goaway(down_->session(), NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(down_->session()),
                          NGHTTP2_NO_ERROR, nullptr, 0);
  }
  if (ctx_.inbound_limit && !ctx_.inbound_limit->TryTake()) return Local(ex, 429, "local_rate_limited\n", ResponseFlag::kRateLimited);
  // Each stream routes by the newest snapshot; the exchange holds the one it started on while
  // it lives (its route, cluster and endpoints point into it).
  FollowCurrentSnapshot(ctx_);
  RouteDecision d;
  tcp::endpoint to;
  bool http2 = true;
  if (ctx_.inbound) {
    ex.entry.cluster = inbound_cluster_;
    to = ctx_.original;
    http2 = AppSpeaksHttp2(ctx_.app_protocol, true) && !ex.tunnel;
    // The app is the only upstream: no retries, no timeout.
    ex.attempts.emplace(nullptr, nullptr, nullptr, to, std::nullopt, ex.entry.method, true);
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
      ex.abort_after_delay = H2Exchange::DelayedAbort{d.local_status, d.local_grpc_status, d.local_body, d.flags};
      ex.up = H2Exchange::Up::kDelayed;
      Spawn(DelayThenForward(ex.down_id, d.delay), "http2 fault delay");
      return;
    }
    if (d.local_status) return Local(ex, d.local_status, d.local_body, d.flags, d.location, d.local_grpc_status);
    if (!ex.in_flight.Enter(d.cluster)) {
      return Local(ex, 503, AnswerFor(ResponseFlag::kUpstreamOverflow).body, ResponseFlag::kUpstreamOverflow);
    }
    to = d.endpoint ? ToEndpoint(*d.endpoint) : ctx_.original;  // PASSTHROUGH picks none
    ex.spec = d.route->spec;
    ex.picked = d.picked;
    ex.attempts.emplace(d.route, d.cluster, d.endpoint, to, d.hash, ex.entry.method, true);
    ex.kept.keep = ex.attempts->may_retry() && !ex.tunnel;  // a tunnel's bytes are never sent twice
    http2 = UpstreamSpeaksHttp2(*d.cluster, d.endpoint, true) && !ex.tunnel;  // upgrades go over HTTP/1.1
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
  ex.http2_upstream = http2;
  if (d.delay.count() > 0) {  // fault injection: the request waits, then goes on (flag DI)
    ex.entry.flags |= ResponseFlag::kDelayInjected;
    ex.up = H2Exchange::Up::kDelayed;
    Spawn(DelayThenForward(ex.down_id, d.delay), "http2 fault delay");
    return;
  }
  Forward(ex);
}

Awaitable<void> H2Bridge::DelayThenForward(int32_t down_id, std::chrono::milliseconds delay) {
  Timer timer(ex_, delay);
  co_await timer.async_wait(kNoThrow);
  // Looked up again: the client may have reset the stream meanwhile.
  auto it = exchanges_.find(down_id);
  if (it != exchanges_.end() && !it->second->down_closed()) {
    H2Exchange& ex = *it->second;
    if (auto abort = std::move(ex.abort_after_delay)) Local(ex, abort->status, abort->body, abort->flags, "", abort->grpc_status);
    else Forward(ex);
  }
}

void H2Bridge::Forward(H2Exchange& ex) {
  AttemptLoop& loop = *ex.attempts;
  ex.up = H2Exchange::Up::kTrying;
  // The route's timeout counts from the request's end (RequestEnded when it is still coming), as
  // Envoy counts it; a tunnel's request is whole with its headers.
  if (ex.request_end() || ex.tunnel) loop.RequestComplete();
  if (!ex.http2_upstream) {
    ex.h1 = true;
    if (!ex.wake) ex.wake.emplace(ex_);
    Spawn(ForwardHttp1(&ex), "http2 to http1.1 exchange");
    return;
  }
  loop.Begin();
  // A body may already be waiting (it came during a fault delay).
  bool no_body = ex.request_end() && ex.request_body.size() == 0 && ex.request_trailers.empty();
  ++ex.tries;  // before the stream opens: its connection may be up at once (UpConnected)
  ex.try_clock = false;
  const ResponseFlag refused =
      pool_.Open(ex, loop.to(), loop.cluster(), ctx_.inbound, ctx_.connect_timeout, ex.upstream_request, !no_body);
  if (refused != ResponseFlag::kNone) return AttemptFailed(ex, {.failure = refused});
  // Until the connection is up only the route's timeout holds (the connect has its own).
  if (!ex.try_clock) ArmDeadline(ex, loop.give_up());
}

void H2Bridge::RequestEnded(H2Exchange& ex) {
  if (!ex.attempts || ex.up != H2Exchange::Up::kTrying) return;  // Forward starts the clock when it comes
  ex.attempts->RequestComplete();
  // An HTTP/1.1 try takes the route's deadline as its body is sent (ForwardHttp1); an HTTP/2 one
  // keeps its try's deadline when that is the earlier.
  if (ex.h1 || (ex.deadline && ex.deadline->expiry() <= ex.attempts->give_up())) return;
  ArmDeadline(ex, ex.attempts->give_up());
}

void H2Bridge::Mirror(H2Exchange& ex, const RouteDecision& d, Headers request) {
  ex.mirror = std::make_unique<H2Exchange::PendingMirror>();
  ex.mirror->cluster = d.mirror;
  ex.mirror->request = std::move(request);
  if (ex.request_end()) FlushMirror(ex);
}

void H2Bridge::MirrorBody(H2Exchange& ex, const uint8_t* data, size_t size) {
  if (ex.mirror->body.size() + size > kMaxMirroredBody) {
    ex.mirror.reset();  // too big to copy: this request is not mirrored
    return;
  }
  ex.mirror->body.append(reinterpret_cast<const char*>(data), size);
}

void H2Bridge::FlushMirror(H2Exchange& ex) {
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

void H2Bridge::Spawn(Awaitable<void> task, const char* what) {
  ++live_tasks_;
  // The count drops as the task completes, normally or by an exception (logged): a task that
  // threw must not leave Serve waiting for it forever.
  asio::co_spawn(ex_, std::move(task), [this, log = LogEscaped(*ctx_.log, what)](std::exception_ptr e) {
    log(e);
    if (--live_tasks_ == 0) tasks_done_.cancel();
  });
}

void H2Bridge::UpstreamFailed(H2Exchange& ex, ResponseFlag failure) {
  if (ex.down_closed()) return;
  if (!ex.response_started()) {
    const FailureAnswer answer = AnswerFor(failure);
    Local(ex, answer.status, answer.body, {});
  } else if (!ex.response_end) {
    ex.entry.flags |= ResponseFlag::kUpstreamProtocolError;
    nghttp2_submit_rst_stream(down_->session(), NGHTTP2_FLAG_NONE, ex.down_id, NGHTTP2_INTERNAL_ERROR);
    down_->Kick();
  }
}

void H2Bridge::Credit(H2Exchange& ex, size_t n) {
  if (n == 0) return;
  nghttp2_session_consume(down_->session(), ex.down_id, n);
  down_->Kick();
}

void H2Bridge::ResumeAnswer(H2Exchange& ex) {
  if (ex.down_closed()) return;
  nghttp2_session_resume_data(down_->session(), ex.down_id);
  down_->Kick();
}

void H2Bridge::SubmitResponse(H2Exchange& ex) {
  if (ex.up != H2Exchange::Up::kLocal) ex.up = H2Exchange::Up::kAnswering;
  // Edited in place: the answer's headers serve nothing else once they are submitted.
  Headers& out = ex.answer.response;
  for (auto& [n, v] : out) {
    if (std::string_view(n) == ":status") ex.entry.code = static_cast<unsigned>(std::atoi(v.c_str()));
  }
  if (!ex.detached() && ex.attempts) ex.attempts->Answered(ex.entry.code);
  if (ex.spec) ApplyHeaderOps(out, ex.spec->headers.response);
  if (ex.picked && ex.picked->headers) ApplyHeaderOps(out, ex.picked->headers->response);
  NameValues nva(out);
  nghttp2_data_provider body{.source = {.ptr = &ex}, .read_callback = &H2Bridge::ReadResponseBody};
  bool no_body = ex.response_end && ex.response_body.size() == 0 && ex.answer.trailers.empty();
  nghttp2_submit_response(down_->session(), ex.down_id, nva.data(), nva.size(), no_body ? nullptr : &body);
  down_->Kick();
}

void H2Bridge::Local(H2Exchange& ex, unsigned status, const std::string& body, ResponseFlags flags,
                     const std::string& location, std::optional<int> grpc_status) {
  ex.up = H2Exchange::Up::kLocal;  // no try is coming: the client's DATA is acknowledged and dropped,
  UpstreamOver(ex);    // what of it is buffered already too
  ex.entry.flags |= flags;
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

ssize_t H2Bridge::ReadResponseBody(nghttp2_session* session, int32_t stream, uint8_t* buf, size_t length, uint32_t* flags,
                                nghttp2_data_source* source, void*) {
  auto& ex = *static_cast<H2Exchange*>(source->ptr);
  size_t n = ex.response_body.Take(buf, length);
  if (n > 0 && ex.h1) ex.Wake();  // room for more of the HTTP/1.1 answer
  // Bytes that came from an HTTP/2 upstream are acknowledged to it (to its connection once its
  // stream is closed); a local answer's bytes came from nowhere.
  if (n > 0 && !ex.detached()) ex.bridge.pool_.Consumed(ex, n);
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

Awaitable<void> ServeHttp2(Socket downstream, std::string head, HttpContext ctx) {
  H2Bridge bridge(std::move(downstream), std::move(ctx));
  co_await bridge.Serve(std::move(head));
}

}  // namespace tern::proxy
