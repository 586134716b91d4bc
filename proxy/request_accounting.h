// What an HTTP request holds of its cluster while it lives: the cluster's requests in flight
// (http2MaxRequests; past it 503 UO at once), each endpoint's load (LEAST_REQUEST), each
// attempt's result for outlier detection, and the retries (Retrier, driven by AttemptLoop).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "proxy/outlier_detection.h"
#include "proxy/response_flags.h"
#include "proxy/retry_policy.h"
#include "proxy/route_table.h"
#include "proxy/rng.h"

namespace tern::proxy {

// One request in flight to a cluster, for as long as it lives.
class RequestInFlight {
 public:
  RequestInFlight() = default;
  RequestInFlight(const RequestInFlight&) = delete;
  RequestInFlight& operator=(const RequestInFlight&) = delete;
  ~RequestInFlight() {
    if (state_) state_->requests.fetch_sub(1, std::memory_order_relaxed);
  }
  // False when the cluster is at its limit.
  bool Enter(const Cluster* c) {
    if (!c) return true;
    if (!TryAcquire(c->state->requests, c->limits.max_requests)) return false;
    state_ = c->state.get();
    return true;
  }

 private:
  ClusterState* state_ = nullptr;
};

// One attempt's load on an endpoint.
class EndpointLoad {
 public:
  explicit EndpointLoad(const UpstreamEndpoint* e) : state_(e ? e->state.get() : nullptr) {
    if (state_) state_->active.fetch_add(1, std::memory_order_relaxed);
  }
  EndpointLoad(const EndpointLoad&) = delete;
  EndpointLoad& operator=(const EndpointLoad&) = delete;
  ~EndpointLoad() {
    if (state_) state_->active.fetch_sub(1, std::memory_order_relaxed);
  }

 private:
  EndpointState* state_;
};

// A slot in the cluster's retry budget while a retry is under way.
class RetrySlot {
 public:
  RetrySlot() = default;
  RetrySlot(const RetrySlot&) = delete;
  RetrySlot& operator=(const RetrySlot&) = delete;
  ~RetrySlot() { Release(); }
  bool Take(const Cluster* c) {
    Release();
    if (!c) return true;
    if (!TryStartRetry(*c->state, c->limits)) return false;
    state_ = c->state.get();
    return true;
  }
  void Release() {
    if (state_) EndRetry(*state_);
    state_ = nullptr;
  }

 private:
  ClusterState* state_ = nullptr;
};

// The status outlier detection counts for an attempt: the answer's, else 503 for a local
// failure and 504 for a timeout (Envoy's mapping of locally originated errors).
inline unsigned OutcomeStatus(AttemptFailure failure, unsigned status) {
  switch (failure) {
    case AttemptFailure::kNone: return status;
    case AttemptFailure::kTimeout: return 504;
    case AttemptFailure::kProtocolError: return 502;
    default: return 503;
  }
}

inline void RecordAttempt(const Cluster* c, const UpstreamEndpoint* e, AttemptFailure failure, unsigned status) {
  if (c && e) RecordOutcome(*c, *e, OutcomeStatus(failure, status), SteadyNowNs());
}

// One request's retries (AttemptLoop's): after each attempt, whether another is made (the
// policy wants it, attempts are left, the request can be sent again, its deadline has not
// passed, the cluster's budget has room), else the flag that says why not (URX: attempts
// spent; UO: budget spent); the backoff before the next. A retry holds its budget slot until
// its own attempt has ended.
class Retrier {
 public:
  using Clock = std::chrono::steady_clock;
  // `policy` null: no retries (inbound).
  Retrier(const RetryPolicy* policy, const Cluster* cluster, std::string_view method)
      : policy_(policy), cluster_(cluster), method_(method) {}

  // `status`: the answer's when failure is kNone (`grpc_status` its grpc-status, when its headers
  // carry one). `replayable`: the request can be sent whole again.
  bool Again(AttemptFailure failure, unsigned status, bool replayable, Clock::time_point give_up, ResponseFlags& flags,
             std::optional<int> grpc_status = std::nullopt) {
    slot_.Release();  // the attempt that just ended, if it was a retry, is over
    if (!policy_ || !ShouldRetry(*policy_, failure, status, method_, grpc_status)) return false;
    if (retries_ >= policy_->attempts) {
      if (policy_->attempts > 0) flags |= ResponseFlag::kUpstreamRetryLimitExceeded;
      return false;
    }
    if (!replayable || Clock::now() >= give_up) return false;
    if (!slot_.Take(cluster_)) {
      flags |= ResponseFlag::kUpstreamOverflow;  // the budget is spent: this failure stands
      return false;
    }
    ++retries_;
    return true;
  }
  // The wait before the retry Again just granted, within the deadline.
  std::chrono::milliseconds Backoff(Rng& rng, Clock::time_point give_up) const {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(std::max(Clock::duration::zero(), give_up - Clock::now()));
    return std::min(RetryBackoff(retries_, rng), left);
  }
  // When this try must have its answer: the per-try timeout, within the request's deadline.
  Clock::time_point TryDeadline(Clock::time_point give_up) const {
    if (!policy_ || !policy_->per_try_timeout) return give_up;
    return std::min(give_up, Clock::now() + *policy_->per_try_timeout);
  }
  int max_retries() const { return policy_ ? policy_->attempts : 0; }

 private:
  const RetryPolicy* policy_;
  const Cluster* cluster_;
  std::string_view method_;
  int retries_ = 0;
  RetrySlot slot_;
};

}  // namespace tern::proxy
