#include "proxy/route_decision.h"

#include "core/annotations/keys.h"
#include "proxy/load_balancer.h"

#include <algorithm>

namespace tern::proxy {

bool Chance(double percentage, Rng& rng) {
  return static_cast<double>(rng() % 1000000) < percentage * 10000;
}

RouteDecision Decide(const VirtualHost* host, const RouteTable& table, const RequestView& request, Rng& rng,
                     int64_t now_ns) {
  RouteDecision d;
  if (!host && table.snapshot().mesh.outbound_traffic_policy == "REGISTRY_ONLY") {
    // Neither the destination nor the authority is in the registry.
    d.local_status = 502;
    d.local_body = "destination not in the mesh registry (REGISTRY_ONLY)\n";
    d.flags = ResponseFlag::kNoRouteFound;
    d.cluster_name = "BlackHoleCluster";
    return d;
  }
  d.route = host ? table.Match(*host, request) : nullptr;
  if (!d.route) {
    d.local_status = 404;
    d.local_body = "no route\n";
    d.flags = ResponseFlag::kNoRouteFound;
    return d;
  }
  const istio::HttpRoute* spec = d.route->spec;
  if (spec && spec->fault) {  // the fault filter runs before the router: it applies to every action
    const auto& f = *spec->fault;
    // Drawn independently, as Envoy does; both drawn: the delay, then the abort.
    if (f.delay && f.delay->fixed_delay.count() > 0 && Chance(f.delay->percentage, rng)) {
      d.delay = std::chrono::duration_cast<std::chrono::milliseconds>(f.delay->fixed_delay);
      d.flags = ResponseFlag::kDelayInjected;
    }
    if (f.abort && (f.abort->http_status || f.abort->grpc_status) && Chance(f.abort->percentage, rng)) {
      d.local_status = f.abort->grpc_status ? 200 : f.abort->http_status;  // gRPC: a trailers-only answer
      d.local_grpc_status = f.abort->grpc_status;
      d.local_body = f.abort->grpc_status ? "" : "fault filter abort";
      d.flags = ResponseFlag::kFaultInjected;
      if (d.delay.count() > 0) d.flags |= ResponseFlag::kDelayInjected;
      return d;
    }
  }
  if (spec && spec->direct_response) {
    d.local_status = static_cast<unsigned>(spec->direct_response->status);
    d.local_body = spec->direct_response->body;
    return d;
  }
  if (spec && spec->redirect) {
    const auto& r = *spec->redirect;
    d.local_status = static_cast<unsigned>(r.redirect_code);
    std::string authority(r.authority.empty() ? request.authority : r.authority);
    if (r.port) {  // the port replaces the authority's own (an IPv6 literal keeps its brackets)
      size_t colon = authority.rfind(':');
      if (colon != std::string::npos && authority.find(']', colon) == std::string::npos) authority.resize(colon);
      authority += ":" + std::to_string(*r.port);
    }
    d.location = (r.scheme.empty() ? std::string(request.scheme) : r.scheme) + "://" + authority +
                 std::string(r.uri.empty() ? request.path : r.uri);
    return d;
  }
  d.picked = RouteTable::Pick(*d.route, rng());
  d.cluster = d.picked ? d.picked->cluster : nullptr;
  if (d.cluster) d.cluster_name = d.cluster->name;
  if (d.cluster && d.cluster->lb == LbPolicy::kPassthrough && d.cluster->known_subset) {
    d.passthrough = true;
  } else {
    if (d.cluster) {
      d.hash = RequestHash(*d.cluster, request);
      d.endpoint = PickEndpoint(*d.cluster, d.hash, nullptr, rng, now_ns);
    }
    if (!d.endpoint) {
      d.local_status = 503;
      d.local_body = "no healthy upstream\n";
      d.flags = d.cluster && !d.cluster->known_subset ? ResponseFlag::kNoClusterFound : ResponseFlag::kNoHealthyUpstream;
      return d;
    }
  }
  if (d.route->mirror && !d.route->mirror->endpoints.empty() && Chance(spec ? spec->mirror_percentage : 100, rng)) {
    d.mirror = d.route->mirror;
  }
  return d;
}

const UpstreamEndpoint* RetryEndpoint(const Cluster* cluster, std::optional<uint64_t> hash, const UpstreamEndpoint* last,
                                      bool downstream_http2, Rng& rng, int64_t now_ns) {
  if (!cluster || cluster->lb == LbPolicy::kPassthrough) return nullptr;
  const UpstreamEndpoint* next = PickEndpoint(*cluster, hash, hash ? nullptr : last, rng, now_ns);
  if (next && last &&
      UpstreamSpeaksHttp2(*cluster, next, downstream_http2) != UpstreamSpeaksHttp2(*cluster, last, downstream_http2)) {
    return nullptr;
  }
  return next;
}

namespace {

bool DeclaredHttp2(config::Protocol p, bool downstream_http2) {
  switch (p) {
    case config::Protocol::kHttp2:
    case config::Protocol::kGrpc: return true;
    case config::Protocol::kHttp: return false;
    default: return downstream_http2;
  }
}

}  // namespace

std::optional<std::chrono::milliseconds> RouteTimeout(const Route* route) {
  if (!route || !route->spec || !route->spec->timeout || route->spec->timeout->count() <= 0) return std::nullopt;
  return std::max(std::chrono::milliseconds(1), std::chrono::duration_cast<std::chrono::milliseconds>(*route->spec->timeout));
}

bool UpstreamSpeaksHttp2(const Cluster& cluster, const UpstreamEndpoint* endpoint, bool downstream_http2) {
  if (cluster.protocol == config::Protocol::kHttp && cluster.h2_upgrade && endpoint && endpoint->labels) {
    auto mode = endpoint->labels->find(keys::kTlsModeLabel);
    if (mode != endpoint->labels->end() && mode->second == "istio") return true;
  }
  return DeclaredHttp2(cluster.protocol, downstream_http2);
}

bool AppSpeaksHttp2(config::Protocol app_protocol, bool downstream_http2) {
  return DeclaredHttp2(app_protocol, downstream_http2);
}

std::string RewritePath(std::string_view path, const Route& route, const istio::HttpRewrite& rewrite) {
  if (!rewrite.uri) return std::string(path);
  for (const auto& m : route.matches) {
    const auto& uri = m.spec->uri;
    if (uri && uri->kind != istio::StringMatch::Kind::kRegex && path.substr(0, uri->value.size()) == uri->value) {
      return *rewrite.uri + std::string(path.substr(uri->value.size()));
    }
  }
  size_t q = path.find('?');
  return *rewrite.uri + (q == std::string_view::npos ? "" : std::string(path.substr(q)));
}

}  // namespace tern::proxy
