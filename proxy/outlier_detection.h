// Outlier detection (DestinationRule outlierDetection), as Envoy's consecutive-error detectors:
// every attempt's result is recorded against its endpoint; consecutive5xxErrors 5xx answers in a
// row (local failures count: a connect failure or reset as 503, a timeout as 504), or
// consecutiveGatewayErrors 502/503/504 in a row, eject it at once for baseEjectionTime × the
// number of its ejections (up to 300 s); the multiplier falls by one per `interval` it stays
// healthy. An ejection is refused when maxEjectionPercent of the cluster is already out (the
// first is always allowed). Unlike Envoy, an endpoint returns exactly when its time is up, not
// at the next interval tick.
#pragma once

#include <cstdint>

#include "proxy/route_table.h"

namespace tern::proxy {

// `status`: the answer's, or 503 for a connect failure or reset, 504 for a timeout.
// True when this result ejected the endpoint.
bool RecordOutcome(const Cluster& cluster, const UpstreamEndpoint& endpoint, unsigned status, int64_t now_ns);

}  // namespace tern::proxy
