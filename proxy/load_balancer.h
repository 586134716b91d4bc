// Picks the endpoint for one attempt by the cluster's load balancer, among the endpoints outlier
// detection has not ejected (all of them when too few are healthy, per minHealthPercent):
//   LEAST_REQUEST  (Istio's default) two random endpoints, the one with fewer requests in flight;
//   ROUND_ROBIN    a cursor shared by the workers;
//   RANDOM         uniform;
//   consistentHash rendezvous hashing on the request's key (a header, a cookie, a query
//                  parameter, the source IP): a key keeps its endpoint while that endpoint is
//                  listed and healthy, and only its keys move when one goes; a request without
//                  the key is placed at random, as Envoy does.
// PASSTHROUGH has no endpoint list: the session connects to the original destination.
#pragma once

#include <cstdint>
#include <optional>

#include "proxy/route_table.h"
#include "proxy/rng.h"

namespace tern::proxy {

// The request's hash key by the cluster's consistentHash, if it hashes and the key is present.
std::optional<uint64_t> RequestHash(const Cluster& cluster, const RequestView& request);

// Null when every endpoint is ejected (503, flag UH). `avoid`: a retry's previous endpoint,
// skipped when another is available (Istio's previous_hosts predicate).
const UpstreamEndpoint* PickEndpoint(const Cluster& cluster, std::optional<uint64_t> hash, const UpstreamEndpoint* avoid,
                                     Rng& rng, int64_t now_ns);

// 64-bit FNV-1a, mixed: stable across runs and processes (consistent hashing needs that).
uint64_t StableHash(std::string_view data, uint64_t seed = 0);

}  // namespace tern::proxy
