// One request's routing decision, shared by the HTTP/1.1 and HTTP/2 sessions: the route that
// matches, the weighted cluster it picks and an endpoint in it, or the answer the proxy gives
// itself (no route 404/NR, direct response, redirect, no healthy upstream 503/UH or NC). Pure:
// the random draws come from the caller.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <string_view>

#include "proxy/route_table.h"

namespace tern::proxy {

struct RouteDecision {
  const Route* route = nullptr;
  const WeightedCluster* picked = nullptr;
  const Cluster* cluster = nullptr;
  const UpstreamEndpoint* endpoint = nullptr;
  const Cluster* mirror = nullptr;  // set when this request is to be mirrored (the percentage drawn)
  // A local answer (no upstream) when local_status != 0.
  unsigned local_status = 0;
  std::string local_body, location;
  const char* flags = "-";
};

// `host`: the service the request addresses (by authority or by the connection's destination).
RouteDecision Decide(const VirtualHost* host, const RouteTable& table, const RequestView& request, std::minstd_rand& rng);

// The path the upstream gets: Envoy's prefix rewrite (the matched uri prefix or exact uri is
// replaced), else the whole path replaced with the query kept.
std::string RewritePath(std::string_view path, const Route& route, const istio::HttpRewrite& rewrite);

}  // namespace tern::proxy
