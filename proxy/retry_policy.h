// A route's retry policy (VirtualService `retries`, else Istio's default: 2 attempts on
// connect-failure, refused-stream, unavailable, cancelled and status 503), what each attempt's
// outcome means to it, the backoff between attempts, and the retry budget.
//
// Tern's rules, Envoy's where Envoy has one:
//  - retryOn: 5xx (any 5xx, or no answer at all: connect failure, reset, per-try timeout, an
//    answer that is no HTTP - Envoy resets such a stream with a protocol error),
//    gateway-error (502, 503, 504, or no answer), connect-failure, refused-stream (an HTTP/2
//    REFUSED_STREAM), reset (no answer: reset, disconnect or per-try timeout), retriable-4xx
//    (409), retriable-status-codes and plain codes ("503").
//  - gRPC: cancelled, deadline-exceeded, internal, resource-exhausted, unavailable retry an
//    answer whose headers carry that grpc-status (a trailers-only answer, as Envoy reads it).
//  - A request whose upstream never saw it (connect failure, refused stream) is retried whatever
//    its method, and so is a gRPC call by its grpc-status (gRPC's own say that it may be); any
//    other failure only for idempotent methods, so a POST is never sent twice.
//  - Nothing is retried once response bytes went to the client, nor when the request body was
//    too large to keep a copy of.
//  - Backoff before retry n: uniform in [0, 25 ms × (2^n - 1)), capped at 250 ms (Envoy's).
//  - Budget: retries in flight per cluster stay within max(3, 20 % of the requests in flight)
//    (Envoy's retry budget defaults; Istio configures none) and within
//    connectionPool.http.maxRetries, so retries cannot multiply load without bound. A retry
//    past the budget is not made: the failure stands, flag UO.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "proxy/rng.h"

namespace tern::istio {
struct HttpRetry;
}

namespace tern::proxy {

struct ClusterState;
struct PoolLimits;

enum RetryOn : uint32_t {
  kRetry5xx = 1u << 0,
  kRetryGatewayError = 1u << 1,
  kRetryConnectFailure = 1u << 2,
  kRetryRefusedStream = 1u << 3,
  kRetryReset = 1u << 4,
  kRetry4xx = 1u << 5,
  kRetryStatusCodes = 1u << 6,
  kRetryGrpcCancelled = 1u << 7,
  kRetryGrpcDeadlineExceeded = 1u << 8,
  kRetryGrpcInternal = 1u << 9,
  kRetryGrpcResourceExhausted = 1u << 10,
  kRetryGrpcUnavailable = 1u << 11,
};

struct RetryPolicy {
  int32_t attempts = 0;  // retries after the first try; 0: none
  std::optional<std::chrono::milliseconds> per_try_timeout;
  uint32_t on = 0;  // RetryOn bits
  std::vector<unsigned> status_codes;
};

RetryPolicy CompileRetryPolicy(const istio::HttpRetry* retries);

// How one attempt ended.
enum class AttemptFailure {
  kNone,            // an answer came (its status decides)
  kConnectFailure,  // UF
  kRefusedStream,   // an HTTP/2 REFUSED_STREAM: the upstream did not process it
  kReset,           // UC: reset or closed before the answer
  kProtocolError,   // UPE: what came back was no answer (bytes that are no HTTP, a broken head): 502
  kTimeout,         // the per-try timeout passed without an answer
};

bool IsIdempotent(std::string_view method);

// Whether the policy retries an attempt that ended so (`status` when it answered; `grpc_status`
// when the answer's headers carry one).
bool ShouldRetry(const RetryPolicy& policy, AttemptFailure failure, unsigned status, std::string_view method,
                 std::optional<int> grpc_status = std::nullopt);

// The wait before retry number `retry` (1 for the first retry).
std::chrono::milliseconds RetryBackoff(int retry, Rng& rng);

// Takes a slot in the cluster's retry budget; false when it is spent (the last failure stands).
bool TryStartRetry(ClusterState& state, const PoolLimits& limits);
void EndRetry(ClusterState& state);

}  // namespace tern::proxy
