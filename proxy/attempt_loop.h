// One request's attempts, the same for every protocol pair (an HTTP/1.1 or HTTP/2 client, an
// HTTP/1.1 or HTTP/2 upstream). The sessions do the I/O: they send an attempt until its answer's
// head (or its failure) and then ask the loop what comes next. The loop owns everything else
// about attempts, written once:
//  - the deadlines: the route's timeout, from the moment the whole request was received (Envoy's
//    rule: an upload takes what it takes), and each try's perTryTimeout within it;
//  - the retries (retry_policy.h): whether the policy wants another, attempts left, the request
//    still replayable, the cluster's retry budget; the backoff; the next endpoint;
//  - a kept-alive HTTP/1.1 connection the upstream closed while it idled: replaced once at once,
//    neither counted nor recorded, for a request that is safe to send again;
//  - outlier detection: every attempt's outcome recorded once (an answer when it goes to the
//    client), except a pool's refusal (UO), which is no endpoint's fault;
//  - the response flags a failure leaves (its own, and URX or UO when the retries stop it);
//  - the endpoint's load for LEAST_REQUEST while an attempt has it.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <optional>
#include <string_view>

#include "proxy/request_accounting.h"
#include "proxy/response_flags.h"
#include "proxy/retry_policy.h"
#include "proxy/rng.h"
#include "proxy/route_table.h"

namespace tern::proxy {

// What a request whose upstream failed with `flag` (UF, UC, UT, UPE, UO) is answered.
struct FailureAnswer {
  unsigned status;
  const char* body;
};
FailureAnswer AnswerFor(ResponseFlag flag);

// How one attempt ended, as the session saw it.
struct AttemptResult {
  // kNone: an answer's head came (its status decides). Else UF, UC, UT, UPE, or UO when a
  // pool's limits refused the attempt before it reached any endpoint.
  ResponseFlag failure = ResponseFlag::kNone;
  bool refused_stream = false;  // an HTTP/2 REFUSED_STREAM: the upstream did not process it
  unsigned status = 0;          // the answer's, when it came
  std::optional<int> grpc_status;  // the answer's headers' grpc-status, when they carry one
  bool reused_connection = false;  // sent on a connection that had served a request before
  bool replayable = true;          // the request can still be sent whole again
};

enum class NextStep {
  kDeliver,       // the answer stands: relay it (and call Answered)
  kReplaceStale,  // a stale kept-alive connection: send again at once on a new one
  kRetry,         // wait Backoff(), MoveOn(), then send again
  kFail,          // the failure stands: answer AnswerFor(its flag); the flags are set
};

class AttemptLoop {
 public:
  using Clock = std::chrono::steady_clock;

  // `route` null: no retries, no timeout (inbound: the app is the only upstream). `cluster`
  // null inbound (no limits, no outlier detection). `downstream_http2`: retries keep to
  // endpoints that speak what the first one was sent (h2UpgradePolicy).
  AttemptLoop(const Route* route, const Cluster* cluster, const UpstreamEndpoint* endpoint,
              boost::asio::ip::tcp::endpoint to, std::optional<uint64_t> hash, std::string_view method,
              bool downstream_http2);

  // An attempt starts on the current endpoint (its load counts until the next one starts).
  void Begin() { load_.emplace(endpoint_); }
  // The whole request has been received: the route's timeout runs from now (once).
  void RequestComplete();
  Clock::time_point give_up() const { return give_up_; }
  bool timed_out() const { return Clock::now() >= give_up_; }
  // When the try under way must have its answer: its perTryTimeout, within the route's.
  Clock::time_point TryDeadline() const { return retrier_.TryDeadline(give_up_); }
  // A retry is possible at all: the body must be kept as it is sent.
  bool may_retry() const { return retrier_.max_retries() > 0; }
  int max_attempts() const { return retrier_.max_retries() + 1; }

  // After an attempt that did not reach the client: what comes next. Records the outcome for
  // outlier detection (but a delivered answer's: Answered) and adds to `flags` what a failure
  // that stands leaves.
  NextStep After(const AttemptResult& result, ResponseFlags& flags);
  // The answer's head goes to the client.
  void Answered(unsigned status) { RecordAttempt(cluster_, endpoint_, AttemptFailure::kNone, status); }
  // (A short body held whole that breaks off before any of it reached the client is one more
  // failed try: the session calls After again, with the failure.)
  std::chrono::milliseconds Backoff(Rng& rng) const { return retrier_.Backoff(rng, give_up_); }
  // The retry's endpoint, by the cluster's balancer (the last one stands when no other fits).
  void MoveOn(Rng& rng);

  const Cluster* cluster() const { return cluster_; }
  const UpstreamEndpoint* endpoint() const { return endpoint_; }
  const boost::asio::ip::tcp::endpoint& to() const { return to_; }

 private:
  const Route* route_;
  const Cluster* cluster_;
  const UpstreamEndpoint* endpoint_;
  boost::asio::ip::tcp::endpoint to_;
  std::optional<uint64_t> hash_;
  std::string_view method_;
  bool downstream_http2_;
  Retrier retrier_;
  Clock::time_point give_up_ = Clock::time_point::max();
  bool stale_replaced_ = false;
  std::optional<EndpointLoad> load_;
};

}  // namespace tern::proxy
