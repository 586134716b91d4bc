#include "proxy/route_table.h"

#include <arpa/inet.h>
#include <re2/re2.h>

#include <algorithm>

#include "core/base/ascii.h"
#include "proxy/load_balancer.h"

namespace tern::proxy {

using istio::StringMatch;

std::string ResolveHost(std::string_view host, std::string_view ns, std::string_view domain) {
  std::string h(host);
  if (h.empty() || h.find('*') != std::string::npos) return h;
  size_t dots = std::count(h.begin(), h.end(), '.');
  std::string suffix = ".svc." + std::string(domain);
  if (h.size() > suffix.size() && h.compare(h.size() - suffix.size(), suffix.size(), suffix) == 0) return h;
  if (dots == 0) return h + "." + std::string(ns) + suffix;             // name
  if (dots == 1) return h + suffix;                                     // name.ns
  if (h.size() > 4 && h.compare(h.size() - 4, 4, ".svc") == 0) return h + "." + std::string(domain);  // name.ns.svc
  return h;  // some other FQDN (an external host)
}

namespace {

std::shared_ptr<const re2::RE2> Compile(const std::string& pattern, bool ignore_case) {
  RE2::Options o;
  o.set_log_errors(false);
  o.set_case_sensitive(!ignore_case);
  auto re = std::make_shared<const re2::RE2>(pattern, o);
  return re->ok() ? re : nullptr;  // the parser validated it; a null here never matches
}

bool Matches(const StringMatch& m, std::string_view value, const re2::RE2* re, bool ignore_case = false) {
  switch (m.kind) {
    case StringMatch::Kind::kPresent: return true;
    case StringMatch::Kind::kExact: return ignore_case ? AsciiIEquals(value, m.value) : value == m.value;
    case StringMatch::Kind::kPrefix: {
      if (value.size() < m.value.size()) return false;
      std::string_view head = value.substr(0, m.value.size());
      return ignore_case ? AsciiIEquals(head, m.value) : head == m.value;
    }
    case StringMatch::Kind::kRegex: return re && RE2::FullMatch(re2::StringPiece(value.data(), value.size()), *re);
  }
  return false;
}

// Every value of a repeated header, joined with ',' as one field value (RFC 9110 5.3): a second
// copy of a header cannot slip past a match made against the first. Names compare without case.
bool HeaderValue(const RequestView& r, std::string_view name, std::string& out) {
  bool found = false;
  if (!r.headers) return false;
  for (const auto& [n, v] : *r.headers) {
    if (!AsciiIEquals(n, name)) continue;
    if (found) out += ",";
    out.append(v);
    found = true;
  }
  return found;
}

bool QueryValue(std::string_view path, std::string_view name, std::string& out) {
  size_t q = path.find('?');
  if (q == std::string_view::npos) return false;
  std::string_view query = path.substr(q + 1);
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view item = query.substr(0, amp);
    size_t eq = item.find('=');
    if (item.substr(0, eq) == name) {
      out = eq == std::string_view::npos ? std::string() : std::string(item.substr(eq + 1));
      return true;
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return false;
}

bool Accepts(const CompiledMatch& cm, const RequestView& r, const std::string& own_namespace) {
  const istio::HttpMatchRequest& m = *cm.spec;
  if (m.port && *m.port != r.port) return false;
  if (!m.source_namespace.empty() && m.source_namespace != own_namespace) return false;
  if (m.uri) {
    std::string_view path = r.path.substr(0, r.path.find('?'));
    if (!Matches(*m.uri, path, cm.uri.get(), m.ignore_uri_case)) return false;
  }
  if (m.scheme && !Matches(*m.scheme, r.scheme, cm.scheme.get())) return false;
  if (m.method && !Matches(*m.method, r.method, cm.method.get())) return false;
  if (m.authority && !Matches(*m.authority, r.authority, cm.authority.get())) return false;
  std::string value;
  for (const auto& h : cm.headers) {
    value.clear();
    if (!HeaderValue(r, *h.name, value) || !Matches(*h.match, value, h.regex.get())) return false;
  }
  for (const auto& h : cm.without_headers) {
    value.clear();
    if (HeaderValue(r, *h.name, value) && Matches(*h.match, value, h.regex.get())) return false;
  }
  for (const auto& q : cm.query_params) {
    value.clear();
    if (!QueryValue(r.path, *q.name, value) || !Matches(*q.match, value, q.regex.get())) return false;
  }
  for (const auto& [key, want] : m.source_labels) {
    if (!r.source_labels) return false;
    auto it = r.source_labels->find(key);
    if (it == r.source_labels->end() || it->second != want) return false;
  }
  return true;
}

CompiledMatch CompileMatch(const istio::HttpMatchRequest& m) {
  CompiledMatch cm;
  cm.spec = &m;
  auto regex = [](const std::optional<StringMatch>& sm, bool ignore_case) -> std::shared_ptr<const re2::RE2> {
    return sm && sm->kind == StringMatch::Kind::kRegex ? Compile(sm->value, ignore_case) : nullptr;
  };
  cm.uri = regex(m.uri, m.ignore_uri_case);
  cm.scheme = regex(m.scheme, false);
  cm.method = regex(m.method, false);
  cm.authority = regex(m.authority, false);
  auto named = [&](const std::map<std::string, StringMatch>& in, std::vector<CompiledStringMatch>& out) {
    for (const auto& [name, sm] : in) out.push_back({&name, &sm, regex(sm, false)});
  };
  named(m.headers, cm.headers);
  named(m.without_headers, cm.without_headers);
  named(m.query_params, cm.query_params);
  return cm;
}

bool Selects(const std::map<std::string, std::string>& selector, const std::map<std::string, std::string>& labels) {
  for (const auto& [k, v] : selector) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}

}  // namespace

namespace {

// One part of a cluster's policy, by Istio's precedence: the subset's port-level setting, the
// subset's, the rule's port-level setting, the rule's.
template <class Part>
const Part* Effective(const istio::TrafficPolicy* rule, const istio::TrafficPolicy* subset, uint32_t port,
                      std::optional<Part> istio::TrafficPolicy::*whole, std::optional<Part> istio::TrafficPolicy::PortLevel::*at_port) {
  for (const istio::TrafficPolicy* p : {subset, rule}) {
    if (!p) continue;
    for (const auto& pl : p->port_level_settings) {
      if (pl.port == port && pl.*at_port) return &*(pl.*at_port);
    }
    if (p->*whole) return &*(p->*whole);
  }
  return nullptr;
}

std::chrono::milliseconds Ms(const istio::Duration& d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d); }

void ApplyPolicy(Cluster& c, const istio::TrafficPolicy* rule, const istio::TrafficPolicy* subset) {
  using TP = istio::TrafficPolicy;
  if (const auto* lb = Effective(rule, subset, c.port, &TP::load_balancer, &TP::PortLevel::load_balancer)) {
    c.lb_spec = lb;
    if (lb->consistent_hash()) c.lb = LbPolicy::kConsistentHash;
    else if (lb->simple == "ROUND_ROBIN") c.lb = LbPolicy::kRoundRobin;
    else if (lb->simple == "RANDOM") c.lb = LbPolicy::kRandom;
    else if (lb->simple == "PASSTHROUGH") c.lb = LbPolicy::kPassthrough;
  }
  if (const auto* cp = Effective(rule, subset, c.port, &TP::connection_pool, &TP::PortLevel::connection_pool)) {
    PoolLimits& l = c.limits;
    if (cp->max_connections) l.max_connections = *cp->max_connections;
    if (cp->http1_max_pending_requests) l.max_pending = *cp->http1_max_pending_requests;
    if (cp->http2_max_requests) l.max_requests = *cp->http2_max_requests;
    if (cp->max_retries && *cp->max_retries > 0) l.max_retries = *cp->max_retries;  // 0 is Istio's "unset"
    if (cp->max_requests_per_connection) l.max_requests_per_connection = *cp->max_requests_per_connection;
    if (cp->connect_timeout && cp->connect_timeout->count() > 0) l.connect_timeout = Ms(*cp->connect_timeout);
    if (cp->idle_timeout && cp->idle_timeout->count() > 0) l.idle_timeout = Ms(*cp->idle_timeout);
    l.keepalive = cp->tcp_keepalive;
    c.h2_upgrade = cp->h2_upgrade_policy == "UPGRADE";
  }
  if (const auto* od = Effective(rule, subset, c.port, &TP::outlier_detection, &TP::PortLevel::outlier_detection)) {
    OutlierSettings& o = c.outlier;
    o.enabled = true;
    if (od->consecutive_5xx_errors) o.consecutive_5xx = *od->consecutive_5xx_errors;
    if (od->consecutive_gateway_errors) o.consecutive_gateway = *od->consecutive_gateway_errors;
    if (od->interval && od->interval->count() > 0) o.interval = Ms(*od->interval);
    if (od->base_ejection_time && od->base_ejection_time->count() > 0) o.base_ejection = Ms(*od->base_ejection_time);
    if (od->max_ejection_percent) o.max_ejection_percent = *od->max_ejection_percent;
    if (od->min_health_percent) o.min_health_percent = *od->min_health_percent;
  }
}

}  // namespace

RouteTable::~RouteTable() = default;

Result<std::shared_ptr<const RouteTable>> RouteTable::Build(std::shared_ptr<const config::Snapshot> snapshot,
                                                            const RouteTable* previous, std::string_view cluster_domain) {
  std::shared_ptr<RouteTable> t(new RouteTable());
  t->snapshot_ = std::move(snapshot);
  t->cluster_domain_ = cluster_domain;
  auto resolve = [&](std::string_view host, std::string_view ns) { return ResolveHost(host, ns, cluster_domain); };
  const config::Snapshot& s = *t->snapshot_;
  const std::string& own_ns = s.workload.namespace_;
  auto ns_of = [&](const istio::Resource& r) { return r.meta.namespace_.empty() ? own_ns : r.meta.namespace_; };

  std::map<std::string, const config::Service*> services;
  for (const auto& svc : s.services) services[svc.hostname] = &svc;
  std::map<std::string, const istio::DestinationRule*> rules;  // resolved host -> first rule
  for (const auto& r : s.resources) {
    if (const auto* dr = std::get_if<istio::DestinationRule>(&r.spec)) rules.emplace(resolve(dr->host, ns_of(r)), dr);
  }

  auto cluster = [&](const std::string& host, uint32_t port, const std::string& subset) -> Cluster* {
    std::string name = "outbound|" + std::to_string(port) + "|" + subset + "|" + host;
    if (auto it = t->clusters_by_name_.find(name); it != t->clusters_by_name_.end()) return it->second;
    auto c = std::make_unique<Cluster>();
    c->name = name;
    c->host = host;
    c->port = port;
    c->subset = subset;
    const std::map<std::string, std::string>* selector = nullptr;
    const istio::TrafficPolicy *rule_policy = nullptr, *subset_policy = nullptr;
    if (auto dr = rules.find(host); dr != rules.end()) {
      if (dr->second->traffic_policy) rule_policy = &*dr->second->traffic_policy;
      for (const auto& sub : dr->second->subsets) {
        if (sub.name != subset) continue;
        selector = &sub.labels;
        if (sub.traffic_policy) subset_policy = &*sub.traffic_policy;
      }
    }
    c->known_subset = subset.empty() || selector != nullptr;
    const config::Service* svc = services.count(host) ? services[host] : nullptr;
    const config::ServicePort* sp = nullptr;
    if (svc) {
      for (const auto& p : svc->ports) {
        if (p.port == port) sp = &p;
      }
    }
    if (sp) c->protocol = sp->protocol;
    ApplyPolicy(*c, rule_policy, subset_policy);
    const Cluster* before = previous ? previous->FindCluster(name) : nullptr;
    c->state = before ? before->state : std::make_shared<ClusterState>();
    if (svc && sp && c->known_subset) {
      for (const auto& e : s.endpoints) {
        if (e.service != host || !e.ready || (selector && !Selects(*selector, e.labels))) continue;
        auto named = e.ports.find(sp->name);
        uint32_t target = named != e.ports.end() ? named->second : sp->target_port ? sp->target_port : sp->port;
        UpstreamEndpoint ep{.address = e.address, .port = target, .labels = &e.labels,
                            .hash = StableHash(e.address + ":" + std::to_string(target))};
        ep.v6 = e.address.find(':') != std::string::npos;
        inet_pton(ep.v6 ? AF_INET6 : AF_INET, e.address.c_str(), ep.ip.data());
        if (before) {  // the same endpoint keeps its load and health
          for (const auto& old : before->endpoints) {
            if (old.port == target && old.address == e.address) ep.state = old.state;
          }
        }
        if (!ep.state) ep.state = std::make_shared<EndpointState>();
        c->endpoints.push_back(std::move(ep));
      }
    }
    Cluster* raw = c.get();
    t->clusters_by_name_[name] = raw;
    t->clusters_.push_back(std::move(c));
    return raw;
  };

  for (const auto& svc : s.services) {
    for (const auto& port : svc.ports) {
      auto vh = std::make_unique<VirtualHost>();
      vh->service = &svc;
      vh->port = &port;
      // The first VirtualService naming this host, as Istio's sidecars do.
      for (const auto& r : s.resources) {
        const auto* vs = std::get_if<istio::VirtualService>(&r.spec);
        if (!vs || !vs->gateways.empty()) continue;  // gateway-only routes are not a sidecar's
        bool names_host = std::any_of(vs->hosts.begin(), vs->hosts.end(),
                                      [&](const std::string& h) { return resolve(h, ns_of(r)) == svc.hostname; });
        if (!names_host) continue;
        for (const auto& hr : vs->http) {
          Route route;
          route.virtual_service = ns_of(r) + "/" + r.meta.name;
          route.spec = &hr;
          route.retry = CompileRetryPolicy(hr.retries ? &*hr.retries : nullptr);
          bool port_applies = hr.match.empty();
          for (const auto& m : hr.match) {
            if (!m.port || *m.port == port.port) {
              route.matches.push_back(CompileMatch(m));
              port_applies = true;
            }
          }
          if (!port_applies) continue;
          for (const auto& d : hr.route) {
            std::string host = resolve(d.destination.host, ns_of(r));
            route.clusters.push_back({cluster(host, d.destination.port.value_or(port.port), d.destination.subset), d.weight,
                                      &d.headers});
          }
          if (hr.mirror) {
            route.mirror = cluster(resolve(hr.mirror->host, ns_of(r)), hr.mirror->port.value_or(port.port), hr.mirror->subset);
          }
          vh->routes.push_back(std::move(route));
        }
        break;
      }
      if (vh->routes.empty()) {
        Route fallback;
        fallback.retry = CompileRetryPolicy(nullptr);
        fallback.clusters.push_back({cluster(svc.hostname, port.port, ""), 100, nullptr});
        vh->routes.push_back(std::move(fallback));
      }
      for (const auto& ip : svc.cluster_ips) t->by_ip_port_[{ip, port.port}] = vh.get();
      t->by_host_port_[{svc.hostname, port.port}] = vh.get();
      t->hosts_.push_back(std::move(vh));
    }
  }
  for (const auto& e : s.endpoints) {
    const config::Service* svc = services.count(e.service) ? services[e.service] : nullptr;
    if (!svc) continue;
    for (const auto& p : svc->ports) {
      auto named = e.ports.find(p.name);
      uint32_t target = named != e.ports.end() ? named->second : p.target_port ? p.target_port : p.port;
      t->inbound_protocols_.emplace(std::pair{e.address, target}, p.protocol);
    }
  }
  return std::shared_ptr<const RouteTable>(std::move(t));
}

config::Protocol RouteTable::InboundProtocol(std::string_view ip, uint32_t port) const {
  auto it = inbound_protocols_.find({std::string(ip), port});
  return it == inbound_protocols_.end() ? config::Protocol::kSniff : it->second;
}

const VirtualHost* RouteTable::ForDestination(std::string_view ip, uint32_t port) const {
  auto it = by_ip_port_.find({std::string(ip), port});
  return it == by_ip_port_.end() ? nullptr : it->second;
}

const VirtualHost* RouteTable::ForAuthority(std::string_view authority, uint32_t port) const {
  std::string_view host = authority;
  // Strip ":port" (not inside an IPv6 literal).
  if (size_t colon = host.rfind(':'); colon != std::string_view::npos && host.find(']') == std::string_view::npos) {
    host = host.substr(0, colon);
  }
  std::string fqdn = ResolveHost(host, snapshot_->workload.namespace_, cluster_domain_);
  auto it = by_host_port_.find({fqdn, port});
  if (it != by_host_port_.end()) return it->second;
  return ForDestination(host, port);  // an authority that is a cluster IP
}

const Route* RouteTable::Match(const VirtualHost& host, const RequestView& request) const {
  for (const Route& route : host.routes) {
    if (route.matches.empty()) return &route;
    for (const CompiledMatch& m : route.matches) {
      if (Accepts(m, request, snapshot_->workload.namespace_)) return &route;
    }
  }
  return nullptr;
}

const WeightedCluster* RouteTable::Pick(const Route& route, uint64_t random) {
  if (route.clusters.empty()) return nullptr;
  if (route.clusters.size() == 1) return &route.clusters[0];
  uint64_t total = 0;
  for (const auto& c : route.clusters) total += static_cast<uint64_t>(c.weight);
  if (total == 0) return &route.clusters[0];
  uint64_t point = random % total;
  for (const auto& c : route.clusters) {
    if (point < static_cast<uint64_t>(c.weight)) return &c;
    point -= static_cast<uint64_t>(c.weight);
  }
  return &route.clusters.back();
}

const Cluster* RouteTable::FindCluster(const std::string& name) const {
  auto it = clusters_by_name_.find(name);
  return it == clusters_by_name_.end() ? nullptr : it->second;
}

}  // namespace tern::proxy
