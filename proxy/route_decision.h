// One request's routing decision, shared by the HTTP/1.1 and HTTP/2 sessions: the route that
// matches, the weighted cluster it picks and an endpoint in it, or the answer the proxy gives
// itself (no route 404/NR, REGISTRY_ONLY's 502/NR for a host outside the registry, direct
// response, redirect, fault injection's abort 
// (FI) and delay (DI), no healthy upstream 503/UH or NC). Pure: the random draws and the clock
// come from the caller.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "proxy/response_flags.h"
#include "proxy/route_table.h"
#include "proxy/rng.h"

namespace tern::proxy {

struct RouteDecision {
  const Route* route = nullptr;
  const WeightedCluster* picked = nullptr;
  const Cluster* cluster = nullptr;
  const UpstreamEndpoint* endpoint = nullptr;
  const Cluster* mirror = nullptr;  // set when this request is to be mirrored (the percentage drawn)
  bool passthrough = false;         // PASSTHROUGH: to the connection's original destination, no endpoint
  std::optional<uint64_t> hash;     // the consistent-hash key's, for retries' picks
  std::chrono::milliseconds delay{0};  // fault injection: wait this long before forwarding (flag DI)
  std::string_view cluster_name;    // for the access log: the cluster's, or BlackHoleCluster
  // A local answer (no upstream) when local_status != 0; given after `delay` when that is set
  // too (a fault's delay and abort both drawn).
  unsigned local_status = 0;
  std::string local_body, location;
  std::optional<int> local_grpc_status;  // the answer is gRPC's trailers-only form, with this grpc-status
  ResponseFlags flags;
};

// `host`: the service the request addresses (by authority or by the connection's destination).
RouteDecision Decide(const VirtualHost* host, const RouteTable& table, const RequestView& request, Rng& rng,
                     int64_t now_ns);

// A retry's endpoint: by the cluster's balancer, another than the last when it can (not when
// hashing: a key keeps its endpoint), speaking the protocol the last one was sent (with
// h2UpgradePolicy UPGRADE, endpoints with and without a sidecar differ). Null when none such
// is healthy or the cluster has no endpoint list (PASSTHROUGH): the last one stands.
const UpstreamEndpoint* RetryEndpoint(const Cluster* cluster, std::optional<uint64_t> hash, const UpstreamEndpoint* last,
                                      bool downstream_http2, Rng& rng, int64_t now_ns);

// Whether an event of `percentage` (in [0, 100]) happens on this draw: drawn in millionths.
bool Chance(double percentage, Rng& rng);

// The route's `timeout` (the wait for the upstream's answer; 504, flag UT, past it), or none:
// unset or 0 disables it, as in Istio.
std::optional<std::chrono::milliseconds> RouteTimeout(const Route* route);

// Whether the upstream speaks HTTP/2, by Istio's rules: a port declared http2 or grpc does; a
// port declared http speaks HTTP/1.1 unless the DestinationRule's h2UpgradePolicy is UPGRADE
// and the endpoint runs a sidecar (label security.istio.io/tlsMode=istio: its proxy takes HTTP/2
// and speaks to the app in the app's protocol); an undeclared port speaks what the client spoke.
// `endpoint` null: none picked (PASSTHROUGH), no labels to go by.
bool UpstreamSpeaksHttp2(const Cluster& cluster, const UpstreamEndpoint* endpoint, bool downstream_http2);
// Inbound, to the app: its declared protocol, else what the client spoke.
// `app_protocol`: the protocol declared for the app's port (HttpContext::app_protocol).
bool AppSpeaksHttp2(config::Protocol app_protocol, bool downstream_http2);

// The path the upstream gets: Envoy's prefix rewrite (the matched uri prefix or exact uri is
// replaced), else the whole path replaced with the query kept.
std::string RewritePath(std::string_view path, const Route& route, const istio::HttpRewrite& rewrite);

}  // namespace tern::proxy
