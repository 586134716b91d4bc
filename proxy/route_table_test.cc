// The routing core against the seed scenario and Istio's match features: which service a
// destination or authority names, first match wins, x-canary forces v2, 90/10 lands within
// tolerance, repeated headers cannot slip past a match, subsets select endpoints by label.
#include "proxy/route_table.h"

#include <gtest/gtest.h>

#include <random>

#include "core/base/files.h"

namespace tern::proxy {
namespace {

using Headers = std::vector<std::pair<std::string_view, std::string_view>>;

std::shared_ptr<const RouteTable> Table(const std::string& text) {
  auto snap = config::ParseSnapshot(text);
  EXPECT_TRUE(snap.ok()) << snap.status().message();
  auto table = RouteTable::Build(*snap);
  EXPECT_TRUE(table.ok()) << table.status().message();
  return *table;
}

std::shared_ptr<const RouteTable> Seed() {
  return Table(*ReadFile(std::string(TERN_SOURCE_DIR) + "/core/config/testdata/seed.yaml"));
}

const Cluster* Route(const RouteTable& t, const VirtualHost& vh, const Headers& headers, std::string_view path = "/",
                     uint64_t random = 0) {
  RequestView r{.method = "GET", .path = path, .authority = "product-service:8080", .headers = &headers, .port = 8080};
  const proxy::Route* route = t.Match(vh, r);
  if (!route) return nullptr;
  const WeightedCluster* wc = RouteTable::Pick(*route, random);
  return wc ? wc->cluster : nullptr;
}

// A cluster whose DNS domain is not cluster.local (the sidecar's --domain says which): short
// names and the resources' short hosts resolve under it.
TEST(Routing, ShortNamesResolveUnderTheClusterDomain) {
  std::string text = *ReadFile(std::string(TERN_SOURCE_DIR) + "/core/config/testdata/seed.yaml");
  for (size_t at; (at = text.find("svc.cluster.local")) != std::string::npos;) text.replace(at, 17, "svc.corp.example");
  auto snap = config::ParseSnapshot(text);
  ASSERT_TRUE(snap.ok()) << snap.status().message();
  auto table = RouteTable::Build(*snap, nullptr, "corp.example");
  ASSERT_TRUE(table.ok()) << table.status().message();
  const VirtualHost* vh = (*table)->ForAuthority("product-service:8080", 8080);
  ASSERT_NE(vh, nullptr);
  EXPECT_EQ(vh->service->hostname, "product-service.my-app.svc.corp.example");
  EXPECT_EQ((*table)->ForAuthority("product-service.my-app.svc", 8080), vh);
  // The seed's VirtualService names its hosts short: its routes attach under this domain too.
  ASSERT_FALSE(vh->routes.empty());
  EXPECT_NE(vh->routes.front().spec, nullptr);
  // Built with the default domain, the short name finds nothing.
  auto other = RouteTable::Build(*snap);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ((*other)->ForAuthority("product-service", 8080), nullptr);
}

TEST(Routing, TheDestinationOrAuthorityNamesTheService) {
  auto t = Seed();
  const VirtualHost* by_ip = t->ForDestination("10.96.0.20", 8080);
  ASSERT_NE(by_ip, nullptr);
  EXPECT_EQ(by_ip->service->hostname, "product-service.my-app.svc.cluster.local");
  EXPECT_EQ(t->ForDestination("10.96.0.20", 9999), nullptr);
  for (const char* authority : {"product-service", "product-service:8080", "product-service.my-app",
                                "product-service.my-app.svc", "product-service.my-app.svc.cluster.local:8080",
                                "10.96.0.20:8080"}) {
    EXPECT_EQ(t->ForAuthority(authority, 8080), by_ip) << authority;
  }
  EXPECT_EQ(t->ForAuthority("example.com", 8080), nullptr);
  EXPECT_EQ(ResolveHost("reviews", "shop"), "reviews.shop.svc.cluster.local");
  EXPECT_EQ(ResolveHost("reviews.shop", "x"), "reviews.shop.svc.cluster.local");
  EXPECT_EQ(ResolveHost("api.example.com", "x"), "api.example.com");
}

TEST(Routing, TheSeedsCanaryHeaderForcesV2) {
  auto t = Seed();
  const VirtualHost& vh = *t->ForDestination("10.96.0.20", 8080);
  const Cluster* c = Route(*t, vh, {{"x-canary", "true"}});
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->name, "outbound|8080|v2|product-service.my-app.svc.cluster.local");
  ASSERT_EQ(c->endpoints.size(), 1u);
  EXPECT_EQ(c->endpoints[0].address, "10.244.0.12");
  EXPECT_EQ(c->lb_spec->simple, "LEAST_REQUEST") << "the DestinationRule's policy travels with it";
  // A second copy of the header cannot smuggle the canary in (or out): values are joined, and
  // the pick below (random 0) would be v1 on the 90/10 route.
  EXPECT_EQ(Route(*t, vh, {{"x-canary", "false"}, {"x-canary", "true"}}, "/", 0)->subset, "v1");
  EXPECT_EQ(Route(*t, vh, {{"x-canary", "TRUE"}}, "/", 0)->subset, "v1") << "exact is case-sensitive";
}

TEST(Routing, TheSeeds90To10SplitLandsWithinTolerance) {
  auto t = Seed();
  const VirtualHost& vh = *t->ForDestination("10.96.0.20", 8080);
  std::mt19937_64 rng(20261127);
  int v1 = 0, v2 = 0;
  for (int i = 0; i < 10000; ++i) {
    const Cluster* c = Route(*t, vh, {}, "/", rng());
    (c->subset == "v1" ? v1 : v2)++;
  }
  // Binomial(10000, 0.1): sd 30; five sd either side.
  EXPECT_GE(v2, 850);
  EXPECT_LE(v2, 1150);
  EXPECT_EQ(v1 + v2, 10000);
}

TEST(Routing, AServiceWithoutAVirtualServiceGoesToAllItsEndpoints) {
  auto t = Seed();
  const VirtualHost* vh = t->ForDestination("10.96.0.21", 9090);
  ASSERT_NE(vh, nullptr);
  ASSERT_EQ(vh->routes.size(), 1u);
  const Cluster* c = RouteTable::Pick(vh->routes[0], 0)->cluster;
  EXPECT_EQ(c->name, "outbound|9090||order-service.my-app.svc.cluster.local");
  ASSERT_EQ(c->endpoints.size(), 1u);
  EXPECT_EQ(c->endpoints[0].port, 9090u);
}

constexpr const char* kFeatures = R"(
apiVersion: tern.dev/v1alpha1
kind: ProxySnapshot
workload: {name: web-1, namespace: shop, labels: {app: web}}
services:
- hostname: reviews.shop.svc.cluster.local
  clusterIPs: [10.96.1.1]
  ports: [{name: http, port: 9080}, {name: http-admin, port: 9090}]
endpoints:
- {service: reviews.shop.svc.cluster.local, address: 10.1.0.1, ports: {http: 9080}, labels: {version: v1}}
- {service: reviews.shop.svc.cluster.local, address: 10.1.0.2, ports: {http: 9080}, labels: {version: v2}}
- {service: reviews.shop.svc.cluster.local, address: 10.1.0.3, ports: {http: 9080}, labels: {version: v2}, ready: false}
resources:
- apiVersion: networking.istio.io/v1
  kind: VirtualService
  metadata: {name: reviews}
  spec:
    hosts: [reviews]
    http:
    - match: [{uri: {regex: "/api/v[0-9]+/.*"}, method: {exact: POST}}]
      route: [{destination: {host: reviews, subset: v2}}]
      mirror: {host: reviews, subset: v1}
    - match: [{uri: {prefix: /Admin}, ignoreUriCase: true, port: 9080}]
      route: [{destination: {host: reviews, subset: canary}}]
    - match: [{queryParams: {beta: {exact: "1"}}, withoutHeaders: {x-opt-out: {}}}]
      route: [{destination: {host: reviews, subset: v2}}]
    - match: [{sourceLabels: {app: web}, headers: {x-user: {prefix: test-}}}]
      route: [{destination: {host: reviews, subset: v2}}]
    - route: [{destination: {host: reviews, subset: v1}}]
- apiVersion: networking.istio.io/v1
  kind: DestinationRule
  metadata: {name: reviews}
  spec:
    host: reviews.shop.svc.cluster.local
    subsets:
    - {name: v1, labels: {version: v1}}
    - {name: v2, labels: {version: v2}}
)";

TEST(Routing, IstiosMatchFeaturesFirstMatchWins) {
  auto t = Table(kFeatures);
  const VirtualHost& vh = *t->ForDestination("10.96.1.1", 9080);
  std::map<std::string, std::string> web = {{"app", "web"}};
  auto route = [&](std::string_view method, std::string_view path, Headers headers = {},
                   const std::map<std::string, std::string>* labels = nullptr) -> std::string {
    RequestView r{.method = method, .path = path, .authority = "reviews", .headers = &headers,
                  .source_labels = labels, .port = 9080};
    const proxy::Route* m = t->Match(vh, r);
    return m ? RouteTable::Pick(*m, 0)->cluster->subset : "(none)";
  };
  EXPECT_EQ(route("POST", "/api/v2/items"), "v2");
  EXPECT_EQ(route("GET", "/api/v2/items"), "v1") << "method must match too";
  EXPECT_EQ(route("POST", "/api/vx/items"), "v1") << "regex is a full match";
  EXPECT_EQ(route("GET", "/admin/users"), "canary") << "ignoreUriCase";
  EXPECT_EQ(route("GET", "/page?x=2&beta=1"), "v2");
  EXPECT_EQ(route("GET", "/page?beta=1", {{"x-opt-out", "yes"}}), "v1") << "withoutHeaders";
  EXPECT_EQ(route("GET", "/", {{"x-user", "test-7"}}, &web), "v2");
  EXPECT_EQ(route("GET", "/", {{"x-user", "test-7"}}), "v1") << "sourceLabels";

  const proxy::Route* mirrored = t->Match(vh, RequestView{.method = "POST", .path = "/api/v1/x", .port = 9080});
  ASSERT_NE(mirrored->mirror, nullptr);
  EXPECT_EQ(mirrored->mirror->subset, "v1");

  // v2 selects by label and skips the endpoint that is not ready.
  const Cluster* v2 = t->FindCluster("outbound|9080|v2|reviews.shop.svc.cluster.local");
  ASSERT_NE(v2, nullptr);
  ASSERT_EQ(v2->endpoints.size(), 1u);
  EXPECT_EQ(v2->endpoints[0].address, "10.1.0.2");
  // A subset no DestinationRule defines: a cluster with no endpoints, known to be one.
  const Cluster* canary = t->FindCluster("outbound|9080|canary|reviews.shop.svc.cluster.local");
  ASSERT_NE(canary, nullptr);
  EXPECT_FALSE(canary->known_subset);
  EXPECT_TRUE(canary->endpoints.empty());

  // On the admin port the port-bound match does not apply.
  const VirtualHost& admin = *t->ForDestination("10.96.1.1", 9090);
  RequestView r{.method = "GET", .path = "/admin", .port = 9090};
  EXPECT_EQ(RouteTable::Pick(*t->Match(admin, r), 0)->cluster->subset, "v1");
}

}  // namespace
}  // namespace tern::proxy
