#include "proxy/response_flags.h"

namespace tern::proxy {

namespace {

// Every flag Tern sets, in bit order (Envoy's text order).
constexpr ResponseFlag kAll[] = {
    ResponseFlag::kNoHealthyUpstream,       ResponseFlag::kUpstreamRequestTimeout,
    ResponseFlag::kUpstreamConnectionFailure, ResponseFlag::kUpstreamConnectionTermination,
    ResponseFlag::kUpstreamOverflow,        ResponseFlag::kNoRouteFound,
    ResponseFlag::kDelayInjected,           ResponseFlag::kFaultInjected,
    ResponseFlag::kRateLimited,             ResponseFlag::kDownstreamConnectionTermination,
    ResponseFlag::kUpstreamRetryLimitExceeded, ResponseFlag::kStreamIdleTimeout, ResponseFlag::kDownstreamProtocolError,
    ResponseFlag::kUpstreamProtocolError,   ResponseFlag::kNoClusterFound,
    ResponseFlag::kDownstreamRemoteReset,
};

}  // namespace

const char* ShortName(ResponseFlag f) {
  switch (f) {
    case ResponseFlag::kNone: return "-";
    case ResponseFlag::kNoHealthyUpstream: return "UH";
    case ResponseFlag::kUpstreamRequestTimeout: return "UT";
    case ResponseFlag::kUpstreamConnectionFailure: return "UF";
    case ResponseFlag::kUpstreamConnectionTermination: return "UC";
    case ResponseFlag::kUpstreamOverflow: return "UO";
    case ResponseFlag::kNoRouteFound: return "NR";
    case ResponseFlag::kDelayInjected: return "DI";
    case ResponseFlag::kFaultInjected: return "FI";
    case ResponseFlag::kRateLimited: return "RL";
    case ResponseFlag::kDownstreamConnectionTermination: return "DC";
    case ResponseFlag::kUpstreamRetryLimitExceeded: return "URX";
    case ResponseFlag::kStreamIdleTimeout: return "SI";
    case ResponseFlag::kDownstreamProtocolError: return "DPE";
    case ResponseFlag::kUpstreamProtocolError: return "UPE";
    case ResponseFlag::kNoClusterFound: return "NC";
    case ResponseFlag::kDownstreamRemoteReset: return "DR";
  }
  return "-";
}

std::string ResponseFlags::ToString() const {
  if (empty()) return "-";
  std::string out;
  for (ResponseFlag f : kAll) {
    if (!Has(f)) continue;
    if (!out.empty()) out += ',';
    out += ShortName(f);
  }
  return out;
}

}  // namespace tern::proxy
