#include "proxy/attempt_loop.h"

#include "proxy/http_context.h"
#include "proxy/route_decision.h"

namespace tern::proxy {

FailureAnswer AnswerFor(ResponseFlag flag) {
  switch (flag) {
    case ResponseFlag::kUpstreamConnectionFailure: return {503, "upstream connect error\n"};
    case ResponseFlag::kUpstreamOverflow: return {503, "upstream connection pool overflow\n"};
    case ResponseFlag::kUpstreamProtocolError: return {502, "upstream answered garbage\n"};
    case ResponseFlag::kUpstreamRequestTimeout: return {504, "upstream request timeout\n"};
    default: return {503, "upstream reset before response\n"};  // UC
  }
}

namespace {

AttemptFailure FailureOf(const AttemptResult& r) {
  if (r.refused_stream) return AttemptFailure::kRefusedStream;
  switch (r.failure) {
    case ResponseFlag::kNone: return AttemptFailure::kNone;
    case ResponseFlag::kUpstreamConnectionFailure: return AttemptFailure::kConnectFailure;
    case ResponseFlag::kUpstreamRequestTimeout: return AttemptFailure::kTimeout;
    case ResponseFlag::kUpstreamProtocolError: return AttemptFailure::kProtocolError;
    default: return AttemptFailure::kReset;
  }
}

}  // namespace

AttemptLoop::AttemptLoop(const Route* route, const Cluster* cluster, const UpstreamEndpoint* endpoint,
                         boost::asio::ip::tcp::endpoint to, std::optional<uint64_t> hash, std::string_view method,
                         bool downstream_http2)
    : route_(route),
      cluster_(cluster),
      endpoint_(endpoint),
      to_(to),
      hash_(hash),
      method_(method),
      downstream_http2_(downstream_http2),
      retrier_(route ? &route->retry : nullptr, cluster, method) {}

void AttemptLoop::RequestComplete() {
  if (give_up_ != Clock::time_point::max()) return;
  if (auto timeout = RouteTimeout(route_)) give_up_ = Clock::now() + *timeout;
}

NextStep AttemptLoop::After(const AttemptResult& r, ResponseFlags& flags) {
  if (r.failure == ResponseFlag::kUpstreamOverflow) {  // the pool's limits: never retried, no endpoint's fault
    flags |= r.failure;
    return NextStep::kFail;
  }
  const AttemptFailure failure = FailureOf(r);
  if (failure == AttemptFailure::kTimeout && timed_out()) {  // the route's own timeout: no retry
    RecordAttempt(cluster_, endpoint_, failure, 0);
    flags |= r.failure;
    return NextStep::kFail;
  }
  if (r.reused_connection && failure == AttemptFailure::kReset && r.replayable && IsIdempotent(method_) &&
      !stale_replaced_) {
    stale_replaced_ = true;
    return NextStep::kReplaceStale;
  }
  const unsigned status = failure == AttemptFailure::kNone ? r.status : 0;
  if (retrier_.Again(failure, status, r.replayable, give_up_, flags, r.grpc_status)) {
    RecordAttempt(cluster_, endpoint_, failure, status);
    return NextStep::kRetry;
  }
  if (failure == AttemptFailure::kNone) return NextStep::kDeliver;
  RecordAttempt(cluster_, endpoint_, failure, status);
  flags |= r.failure;
  return NextStep::kFail;
}

void AttemptLoop::MoveOn(Rng& rng) {
  if (const UpstreamEndpoint* next = RetryEndpoint(cluster_, hash_, endpoint_, downstream_http2_, rng, SteadyNowNs())) {
    endpoint_ = next;
    to_ = ToEndpoint(*next);
  }
}

}  // namespace tern::proxy
