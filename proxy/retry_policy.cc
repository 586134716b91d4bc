#include "proxy/retry_policy.h"

#include <algorithm>
#include <charconv>

#include "core/istio/virtual_service.h"
#include "proxy/cluster_state.h"

namespace tern::proxy {

namespace {

constexpr std::chrono::milliseconds kBackoffBase{25}, kBackoffMax{250};
constexpr int64_t kMinRetryConcurrency = 3;
constexpr int64_t kRetryBudgetPercent = 20;

uint32_t RetryOnBit(std::string_view p) {
  if (p == "5xx") return kRetry5xx;
  if (p == "gateway-error") return kRetryGatewayError;
  if (p == "connect-failure") return kRetryConnectFailure;
  if (p == "refused-stream") return kRetryRefusedStream;
  if (p == "reset" || p == "reset-before-request") return kRetryReset;
  if (p == "retriable-4xx") return kRetry4xx;
  if (p == "retriable-status-codes") return kRetryStatusCodes;
  if (p == "cancelled") return kRetryGrpcCancelled;
  if (p == "deadline-exceeded") return kRetryGrpcDeadlineExceeded;
  if (p == "internal") return kRetryGrpcInternal;
  if (p == "resource-exhausted") return kRetryGrpcResourceExhausted;
  if (p == "unavailable") return kRetryGrpcUnavailable;
  return 0;  // retriable-headers, envoy-ratelimited, ...: not acted on
}

// Istio's retryOn when a route does not say.
void IstioDefaultRetryOn(RetryPolicy& p) {
  p.on = kRetryConnectFailure | kRetryRefusedStream | kRetryGrpcUnavailable | kRetryGrpcCancelled | kRetryStatusCodes;
  p.status_codes = {503};
}

}  // namespace

RetryPolicy CompileRetryPolicy(const istio::HttpRetry* retries) {
  RetryPolicy p;
  if (!retries) {  // Istio's default for a route without `retries`: 2 attempts
    p.attempts = 2;
    IstioDefaultRetryOn(p);
    return p;
  }
  p.attempts = std::max(0, retries->attempts);
  if (retries->per_try_timeout && retries->per_try_timeout->count() > 0) {
    p.per_try_timeout = std::max(std::chrono::milliseconds(1),
                                 std::chrono::duration_cast<std::chrono::milliseconds>(*retries->per_try_timeout));
  }
  for (const auto& entry : retries->retry_on) {
    unsigned code = 0;
    auto [end, ec] = std::from_chars(entry.data(), entry.data() + entry.size(), code);
    if (ec == std::errc() && end == entry.data() + entry.size()) {
      p.status_codes.push_back(code);  // Istio turns a plain code into retriable-status-codes
      p.on |= kRetryStatusCodes;
    } else {
      p.on |= RetryOnBit(entry);
    }
  }
  if (retries->retry_on.empty()) IstioDefaultRetryOn(p);  // attempts set without retryOn
  return p;
}

bool IsIdempotent(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "PUT" || method == "DELETE" ||
         method == "TRACE";
}

namespace {

uint32_t GrpcBit(int code) {
  switch (code) {
    case 1: return kRetryGrpcCancelled;
    case 4: return kRetryGrpcDeadlineExceeded;
    case 8: return kRetryGrpcResourceExhausted;
    case 13: return kRetryGrpcInternal;
    case 14: return kRetryGrpcUnavailable;
    default: return 0;
  }
}

}  // namespace

bool ShouldRetry(const RetryPolicy& policy, AttemptFailure failure, unsigned status, std::string_view method,
                 std::optional<int> grpc_status) {
  const uint32_t on = policy.on;
  if (failure == AttemptFailure::kNone && grpc_status && (on & GrpcBit(*grpc_status))) return true;
  switch (failure) {
    case AttemptFailure::kConnectFailure:  // never reached the upstream: safe for any method
      return (on & (kRetryConnectFailure | kRetry5xx | kRetryGatewayError | kRetryReset)) != 0;
    case AttemptFailure::kRefusedStream:
      return (on & (kRetryRefusedStream | kRetry5xx | kRetryGatewayError | kRetryReset)) != 0;
    case AttemptFailure::kReset:
    case AttemptFailure::kProtocolError:
    case AttemptFailure::kTimeout:
      return IsIdempotent(method) && (on & (kRetry5xx | kRetryGatewayError | kRetryReset)) != 0;
    case AttemptFailure::kNone: break;
  }
  if (!IsIdempotent(method)) return false;
  if ((on & kRetry5xx) && status >= 500 && status <= 599) return true;
  if ((on & kRetryGatewayError) && (status == 502 || status == 503 || status == 504)) return true;
  if ((on & kRetry4xx) && status == 409) return true;
  if (on & kRetryStatusCodes) {
    return std::find(policy.status_codes.begin(), policy.status_codes.end(), status) != policy.status_codes.end();
  }
  return false;
}

std::chrono::milliseconds RetryBackoff(int retry, Rng& rng) {
  int64_t factor = (int64_t{1} << std::clamp(retry, 1, 16)) - 1;
  auto cap = std::min(kBackoffMax, kBackoffBase * factor);
  return std::chrono::milliseconds(rng() % static_cast<uint64_t>(cap.count()));
}

bool TryStartRetry(ClusterState& state, const PoolLimits& limits) {
  int64_t budget = std::max(kMinRetryConcurrency, state.requests.load(std::memory_order_relaxed) * kRetryBudgetPercent / 100);
  return TryAcquire(state.retries, std::min(budget, limits.max_retries));
}

void EndRetry(ClusterState& state) { state.retries.fetch_sub(1, std::memory_order_relaxed); }

}  // namespace tern::proxy
