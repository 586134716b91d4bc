// The proxy's routing state for one snapshot version, compiled once (regexes built, hosts
// resolved, subsets turned into endpoint lists) so the request path only reads it:
//  - which service a captured connection's original destination (cluster IP:port) or an
//    HTTP authority names;
//  - that service's routes (its VirtualServices' http routes in order, else one default route);
//  - the clusters routes point at (service host + port + subset, with their endpoints).
// Istio's semantics: short hosts resolve in the resource's namespace ("product-service" in
// my-app is product-service.my-app.svc.cluster.local); the first matching route wins; weights
// split traffic; a destination subset that no DestinationRule defines is a cluster without
// endpoints (the request gets 503, flag NC), never a refused snapshot.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/base/status.h"
#include "core/config/snapshot.h"
#include "proxy/cluster_state.h"
#include "proxy/retry_policy.h"

namespace re2 {
class RE2;
}

namespace tern::proxy {

struct UpstreamEndpoint {
  std::string address;
  uint32_t port = 0;
  // `address` parsed once (the snapshot parser validated it): IPv4 in the first four bytes.
  std::array<uint8_t, 16> ip{};
  bool v6 = false;
  const std::map<std::string, std::string>* labels = nullptr;
  std::shared_ptr<EndpointState> state;  // never null; carried across snapshots by address:port
  uint64_t hash = 0;                     // of address:port, for consistent hashing
};

// Istio names clusters "outbound|<port>|<subset>|<host>"; so does Tern (metrics, logs, admin).
struct Cluster {
  std::string name;
  std::string host;
  uint32_t port = 0;
  std::string subset;
  bool known_subset = true;  // false: no DestinationRule defines it (NC)
  std::vector<UpstreamEndpoint> endpoints;
  config::Protocol protocol = config::Protocol::kSniff;  // the service port's, declared or sniffed
  bool h2_upgrade = false;  // the policy's h2UpgradePolicy is UPGRADE (its port-level setting first)
  // The effective policy for this port (a portLevelSettings entry wins over the whole rule).
  LbPolicy lb = LbPolicy::kLeastRequest;  // Istio's default
  const istio::LoadBalancer* lb_spec = nullptr;
  PoolLimits limits;
  OutlierSettings outlier;
  std::shared_ptr<ClusterState> state;  // never null; carried across snapshots by name
};

// What the router needs to know of a request; every header value present, names in any case.
struct RequestView {
  std::string_view method, path, authority, scheme = "http";
  const std::vector<std::pair<std::string_view, std::string_view>>* headers = nullptr;
  const std::map<std::string, std::string>* source_labels = nullptr;
  uint32_t port = 0;
  std::string_view source_ip;  // the downstream's address (consistent hash by source IP)
};

// One name-keyed condition (a header, a query parameter) with its regex compiled.
struct CompiledStringMatch {
  const std::string* name = nullptr;  // owned by the snapshot
  const istio::StringMatch* match = nullptr;
  std::shared_ptr<const re2::RE2> regex;  // set for regex matches
};

// A match with every regex compiled once, so the request path builds nothing.
struct CompiledMatch {
  const istio::HttpMatchRequest* spec = nullptr;
  std::shared_ptr<const re2::RE2> uri, scheme, method, authority;
  std::vector<CompiledStringMatch> headers, without_headers, query_params;
};

struct WeightedCluster {
  const Cluster* cluster = nullptr;
  int32_t weight = 0;
  const istio::Headers* headers = nullptr;
};

struct Route {
  std::string virtual_service;  // namespace/name, or "" for the default route
  const istio::HttpRoute* spec = nullptr;  // null for the default route
  std::vector<CompiledMatch> matches;      // empty: matches every request
  std::vector<WeightedCluster> clusters;
  const Cluster* mirror = nullptr;
  RetryPolicy retry;  // the route's retries, else Istio's default policy
};

struct VirtualHost {
  const config::Service* service = nullptr;
  const config::ServicePort* port = nullptr;
  std::vector<Route> routes;
};

class RouteTable {
 public:
  // `previous`: the table being replaced; its clusters' and endpoints' state carries over.
  // `cluster_domain`: what short hosts resolve under ("name" -> name.<ns>.svc.<cluster_domain>).
  static Result<std::shared_ptr<const RouteTable>> Build(std::shared_ptr<const config::Snapshot> snapshot,
                                                         const RouteTable* previous = nullptr,
                                                         std::string_view cluster_domain = "cluster.local");
  ~RouteTable();

  const config::Snapshot& snapshot() const { return *snapshot_; }
  // The service listening at a cluster IP and port (a captured connection's destination).
  const VirtualHost* ForDestination(std::string_view ip, uint32_t port) const;
  // The service an HTTP authority names on `port`: "name", "name.ns", "name.ns.svc", the FQDN,
  // with or without ":port"; short names resolve in the proxy's own namespace.
  const VirtualHost* ForAuthority(std::string_view authority, uint32_t port) const;
  // The first route whose matches accept the request, or null (404, flag NR).
  const Route* Match(const VirtualHost& host, const RequestView& request) const;
  // A weighted pick; `random` is uniform over [0, 2^64).
  static const WeightedCluster* Pick(const Route& route, uint64_t random);
  const Cluster* FindCluster(const std::string& name) const;
  // The protocol declared for one of this snapshot's endpoints at ip:port (inbound traffic to
  // the app); kSniff when no service declares it.
  config::Protocol InboundProtocol(std::string_view ip, uint32_t port) const;

 private:
  RouteTable() = default;
  std::shared_ptr<const config::Snapshot> snapshot_;
  std::string cluster_domain_;
  std::vector<std::unique_ptr<Cluster>> clusters_;
  std::map<std::string, Cluster*> clusters_by_name_;
  std::vector<std::unique_ptr<VirtualHost>> hosts_;
  std::map<std::pair<std::string, uint32_t>, VirtualHost*> by_ip_port_, by_host_port_;
  std::map<std::pair<std::string, uint32_t>, config::Protocol> inbound_protocols_;
};

// The service a connection's requests name by authority: keep-alive clients repeat theirs, so
// the last one's lookup is remembered (for one connection, on one table).
class AuthorityCache {
 public:
  // Null for an empty authority or one that names no service on `port`.
  const VirtualHost* Find(const RouteTable& table, std::string_view authority, uint32_t port) {
    if (authority.empty()) return nullptr;
    if (authority != authority_ || &table != table_) {  // a new snapshot: its own hosts
      authority_ = authority;
      table_ = &table;
      host_ = table.ForAuthority(authority, port);
    }
    return host_;
  }

 private:
  std::string authority_;
  const RouteTable* table_ = nullptr;
  const VirtualHost* host_ = nullptr;
};

// "product-service" in namespace "my-app" -> "product-service.my-app.svc.cluster.local".
std::string ResolveHost(std::string_view host, std::string_view ns, std::string_view domain = "cluster.local");

}  // namespace tern::proxy
