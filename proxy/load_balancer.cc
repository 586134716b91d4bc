#include "proxy/load_balancer.h"

#include <vector>

#include "core/base/ascii.h"

namespace tern::proxy {

namespace {

uint64_t Mix(uint64_t x) {  // splitmix64's finalizer
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::optional<std::string_view> Header(const RequestView& r, std::string_view name) {
  if (!r.headers) return std::nullopt;
  for (const auto& [n, v] : *r.headers) {
    if (AsciiIEquals(n, name)) return v;
  }
  return std::nullopt;
}

// `name`'s value in the Cookie headers ("a=1; b=2").
std::optional<std::string_view> Cookie(const RequestView& r, std::string_view name) {
  if (!r.headers) return std::nullopt;
  for (const auto& [n, v] : *r.headers) {
    if (!AsciiIEquals(n, "cookie")) continue;
    std::string_view rest = v;
    while (!rest.empty()) {
      size_t end = rest.find(';');
      std::string_view pair = rest.substr(0, end);
      rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
      while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
      size_t eq = pair.find('=');
      if (eq != std::string_view::npos && pair.substr(0, eq) == name) return pair.substr(eq + 1);
    }
  }
  return std::nullopt;
}

std::optional<std::string_view> QueryParam(std::string_view path, std::string_view name) {
  size_t q = path.find('?');
  if (q == std::string_view::npos) return std::nullopt;
  std::string_view rest = path.substr(q + 1);
  while (!rest.empty()) {
    size_t end = rest.find('&');
    std::string_view pair = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
    size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name) return eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
  }
  return std::nullopt;
}

bool Ejected(const UpstreamEndpoint& e, int64_t now_ns) {
  return e.state->ejected_until_ns.load(std::memory_order_relaxed) > now_ns;
}

const UpstreamEndpoint* Choose(const Cluster& c, const std::vector<const UpstreamEndpoint*>& candidates,
                               std::optional<uint64_t> hash, Rng& rng) {
  size_t n = candidates.size();
  if (n == 1) return candidates[0];
  if (hash) {  // rendezvous: the highest score of (key, endpoint) wins
    const UpstreamEndpoint* best = nullptr;
    uint64_t best_score = 0;
    for (const auto* e : candidates) {
      uint64_t score = Mix(*hash ^ e->hash);
      if (!best || score > best_score) best = e, best_score = score;
    }
    return best;
  }
  switch (c.lb) {
    case LbPolicy::kRoundRobin:
      return candidates[c.state->round_robin.fetch_add(1, std::memory_order_relaxed) % n];
    case LbPolicy::kLeastRequest: {
      // Power of two choices: two distinct random endpoints, the less loaded (the first on a tie).
      size_t a = rng() % n, b = rng() % (n - 1);
      if (b >= a) ++b;
      int64_t la = candidates[a]->state->active.load(std::memory_order_relaxed);
      int64_t lb = candidates[b]->state->active.load(std::memory_order_relaxed);
      return lb < la ? candidates[b] : candidates[a];
    }
    default: return candidates[rng() % n];
  }
}

}  // namespace

uint64_t StableHash(std::string_view data, uint64_t seed) {
  uint64_t h = 0xcbf29ce484222325ULL ^ seed;
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return Mix(h);
}

std::optional<uint64_t> RequestHash(const Cluster& cluster, const RequestView& request) {
  if (cluster.lb != LbPolicy::kConsistentHash || !cluster.lb_spec) return std::nullopt;
  const istio::LoadBalancer& lb = *cluster.lb_spec;
  std::optional<std::string_view> key;
  if (lb.hash_header) key = Header(request, *lb.hash_header);
  else if (lb.hash_cookie) key = Cookie(request, *lb.hash_cookie);
  else if (lb.hash_query_param) key = QueryParam(request.path, *lb.hash_query_param);
  else if (lb.hash_source_ip && !request.source_ip.empty()) key = request.source_ip;
  if (!key) return std::nullopt;
  return StableHash(*key);
}

const UpstreamEndpoint* PickEndpoint(const Cluster& c, std::optional<uint64_t> hash, const UpstreamEndpoint* avoid,
                                     Rng& rng, int64_t now_ns) {
  const size_t n = c.endpoints.size();
  if (n == 0) return nullptr;
  bool any_ejected = c.outlier.enabled && c.state->ejected_until_max_ns.load(std::memory_order_relaxed) > now_ns;
  // The fast path: one endpoint, or all healthy and nothing to avoid.
  if (!any_ejected && !avoid && !hash) {
    if (n == 1) return &c.endpoints[0];
    if (c.lb == LbPolicy::kRoundRobin) return &c.endpoints[c.state->round_robin.fetch_add(1, std::memory_order_relaxed) % n];
    if (c.lb == LbPolicy::kRandom) return &c.endpoints[rng() % n];
  }
  thread_local std::vector<const UpstreamEndpoint*> candidates;
  candidates.clear();
  for (const auto& e : c.endpoints) {
    if (!any_ejected || !Ejected(e, now_ns)) candidates.push_back(&e);
  }
  // Too few healthy (minHealthPercent): outlier detection stands aside. None healthy: 503 UH.
  if (any_ejected && static_cast<int64_t>(candidates.size()) * 100 < c.outlier.min_health_percent * static_cast<int64_t>(n)) {
    candidates.clear();
    for (const auto& e : c.endpoints) candidates.push_back(&e);
  }
  if (candidates.empty()) return nullptr;
  if (avoid && candidates.size() > 1) std::erase(candidates, avoid);
  return Choose(c, candidates, hash, rng);
}

}  // namespace tern::proxy
