// Envoy's response flags, the access log's and the metrics' account of why a request ended as it
// did, as a typed bit set: control flow tests bits, never text, and the text ("UF,URX") is made
// only when an entry is written, in Envoy's order, so a reader used to Istio's logs finds what
// they expect.
#pragma once

#include <cstdint>
#include <string>

namespace tern::proxy {

// The bit values are Envoy's (envoy/stream_info/stream_info.h): their order is the order the
// text lists them in.
enum class ResponseFlag : uint32_t {
  kNone = 0,
  kNoHealthyUpstream = 1u << 1,               // UH: no endpoint of the cluster is healthy
  kUpstreamRequestTimeout = 1u << 2,          // UT: no answer within the route's (or a try's) timeout
  kUpstreamConnectionFailure = 1u << 5,       // UF: the connection to the upstream failed
  kUpstreamConnectionTermination = 1u << 6,   // UC: the upstream closed or reset before its answer
  kUpstreamOverflow = 1u << 7,                // UO: a circuit breaker's limit, or the retry budget
  kNoRouteFound = 1u << 8,                    // NR: no route, or a host outside the registry
  kDelayInjected = 1u << 9,                   // DI: fault injection held the request
  kFaultInjected = 1u << 10,                  // FI: fault injection answered it
  kRateLimited = 1u << 11,                    // RL: the local rate limit
  kDownstreamConnectionTermination = 1u << 14,  // DC: the client went away mid-answer
  kUpstreamRetryLimitExceeded = 1u << 15,     // URX: the retries were spent
  kStreamIdleTimeout = 1u << 16,              // SI: a tunnel idled past its idle timeout
  kDownstreamProtocolError = 1u << 18,        // DPE: the client sent something that is no request
  kUpstreamProtocolError = 1u << 23,          // UPE: the upstream sent something that is no answer
  kNoClusterFound = 1u << 24,                 // NC: a subset no DestinationRule defines
  kDownstreamRemoteReset = 1u << 28,          // DR: the client reset its stream
};

class ResponseFlags {
 public:
  constexpr ResponseFlags() = default;
  constexpr ResponseFlags(ResponseFlag f) : bits_(static_cast<uint32_t>(f)) {}  // NOLINT: a flag is a set of one

  constexpr ResponseFlags& operator|=(ResponseFlags other) {
    bits_ |= other.bits_;
    return *this;
  }
  constexpr ResponseFlags operator|(ResponseFlags other) const { return ResponseFlags(bits_ | other.bits_); }
  constexpr bool Has(ResponseFlag f) const { return (bits_ & static_cast<uint32_t>(f)) != 0; }
  constexpr bool empty() const { return bits_ == 0; }
  constexpr bool operator==(const ResponseFlags&) const = default;

  // "UF,URX"; "-" for none.
  std::string ToString() const;

 private:
  constexpr explicit ResponseFlags(uint32_t bits) : bits_(bits) {}
  uint32_t bits_ = 0;
};

constexpr ResponseFlags operator|(ResponseFlag a, ResponseFlag b) { return ResponseFlags(a) | b; }

// The short name of one flag ("UF"); "-" for kNone.
const char* ShortName(ResponseFlag f);

}  // namespace tern::proxy
