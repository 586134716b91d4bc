// What both HTTP sessions count around a request: the cluster's requests in flight
// (http2MaxRequests; past it 503 UO at once), each endpoint's load (LEAST_REQUEST), and each
// attempt's result for outlier detection.
#pragma once

#include <string>

#include "proxy/outlier_detection.h"
#include "proxy/retry_policy.h"
#include "proxy/route_table.h"

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
  // False when the cluster is at its limit (counted as an overflow).
  bool Enter(const Cluster* c) {
    if (!c) return true;
    if (!TryAcquire(c->state->requests, c->limits.max_requests)) {
      c->state->overflows.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
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
    default: return 503;
  }
}

inline void RecordAttempt(const Cluster* c, const UpstreamEndpoint* e, AttemptFailure failure, unsigned status) {
  if (c && e) RecordOutcome(*c, *e, OutcomeStatus(failure, status), SteadyNowNs());
}

// Envoy joins response flags with commas: "URX,UF". "-" is none.
inline void AddFlag(std::string& flags, std::string_view flag) {
  if (flag.empty() || flag == "-") return;
  if (flags.empty() || flags == "-") flags = flag;
  else flags += "," + std::string(flag);
}

}  // namespace tern::proxy
