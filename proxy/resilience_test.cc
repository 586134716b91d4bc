// The resilience core, pure: the seed's DestinationRule compiled into limits, balancer and
// outlier settings; each load balancer's choices; outlier detection's ejection, return,
// growing ejection time and maxEjectionPercent; state carried across snapshots; retry
// policies (the seed's, Istio's default, codes), idempotency and backoff; the retry budget;
// fault injection's percentages.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "core/base/files.h"
#include "proxy/load_balancer.h"
#include "proxy/outlier_detection.h"
#include "proxy/retry_policy.h"
#include "proxy/route_decision.h"
#include "proxy/route_table.h"

namespace tern::proxy {
namespace {

using namespace std::chrono_literals;

std::shared_ptr<const RouteTable> Table(const std::string& text, const RouteTable* previous = nullptr) {
  auto snap = config::ParseSnapshot(text);
  EXPECT_TRUE(snap.ok()) << snap.status().message();
  auto table = RouteTable::Build(*snap, previous);
  EXPECT_TRUE(table.ok()) << table.status().message();
  return *table;
}

std::string SeedText() { return *ReadFile(std::string(TERN_SOURCE_DIR) + "/core/config/testdata/seed.yaml"); }

// Service "web" with `n` endpoints 10.1.0.1.. and the given DestinationRule trafficPolicy.
std::string Web(int n, const std::string& traffic_policy, const std::string& version = "1") {
  std::string s = "apiVersion: tern.dev/v1alpha1\nkind: ProxySnapshot\nversion: \"" + version + "\"\n"
                  "workload: {name: app, namespace: ns}\n"
                  "services:\n- {hostname: web.ns.svc.cluster.local, clusterIPs: [10.96.0.1], ports: [{name: http, port: 80}]}\n"
                  "endpoints:\n";
  for (int i = 1; i <= n; ++i) {
    s += "- {service: web.ns.svc.cluster.local, address: 10.1.0." + std::to_string(i) + ", ports: {http: 80}}\n";
  }
  s += "resources:\n- apiVersion: networking.istio.io/v1\n  kind: DestinationRule\n  metadata: {name: web, namespace: ns}\n"
       "  spec:\n    host: web\n    trafficPolicy: " + traffic_policy + "\n";
  return s;
}

const Cluster& WebCluster(const RouteTable& t) { return *t.FindCluster("outbound|80||web.ns.svc.cluster.local"); }

int64_t Sec(int64_t s) { return s * 1000000000LL; }

TEST(Policy, TheSeedsDestinationRuleCompilesToLimitsBalancerAndDetector) {
  auto t = Table(SeedText());
  const Cluster& v1 = *t->FindCluster("outbound|8080|v1|product-service.my-app.svc.cluster.local");
  EXPECT_EQ(v1.lb, LbPolicy::kLeastRequest);
  EXPECT_EQ(v1.limits.max_connections, 100);
  EXPECT_EQ(v1.limits.max_pending, 100);
  EXPECT_EQ(v1.limits.max_requests, 1000);
  EXPECT_EQ(v1.limits.max_retries, kUnlimited);
  EXPECT_TRUE(v1.outlier.enabled);
  EXPECT_EQ(v1.outlier.consecutive_5xx, 5);
  EXPECT_EQ(v1.outlier.interval, 30s);
  EXPECT_EQ(v1.outlier.base_ejection, 30s);
  EXPECT_EQ(v1.outlier.max_ejection_percent, 50);
  // The seed's route: 3 retries of 2 s on connect-failure, refused-stream, 5xx.
  const Route& canary_split = t->ForDestination("10.96.0.20", 8080)->routes[1];
  EXPECT_EQ(canary_split.retry.attempts, 3);
  EXPECT_EQ(canary_split.retry.per_try_timeout, 2s);
  EXPECT_EQ(canary_split.retry.on, kRetryConnectFailure | kRetryRefusedStream | kRetry5xx);
  // A service without a DestinationRule: Istio's defaults (LEAST_REQUEST, no limits, no detector).
  const Cluster& order = *t->FindCluster("outbound|8080||order-service.my-app.svc.cluster.local");
  EXPECT_EQ(order.lb, LbPolicy::kLeastRequest);
  EXPECT_EQ(order.limits.max_connections, kUnlimited);
  EXPECT_FALSE(order.outlier.enabled);
}

TEST(Policy, SubsetAndPortLevelSettingsWinPartByPart) {
  std::string text = Web(2, "{loadBalancer: {simple: RANDOM}, connectionPool: {tcp: {maxConnections: 7}}, "
                            "portLevelSettings: [{port: {number: 80}, loadBalancer: {simple: ROUND_ROBIN}}]}");
  text += "    subsets:\n    - name: a\n      labels: {}\n      trafficPolicy: {connectionPool: {http: {http1MaxPendingRequests: 3}}}\n";
  auto t = Table(text);
  const Cluster& whole = WebCluster(*t);
  EXPECT_EQ(whole.lb, LbPolicy::kRoundRobin) << "the port-level balancer wins over the rule's";
  EXPECT_EQ(whole.limits.max_connections, 7);
  EXPECT_EQ(whole.lb_spec->simple, "ROUND_ROBIN");
}

TEST(Policy, EndpointAddressesAreParsedOnceAtBuild) {
  std::string text = Web(1, "{}");
  text.insert(text.find("resources:"), "- {service: web.ns.svc.cluster.local, address: \"fd00::5\", ports: {http: 80}}\n");
  auto t = Table(text);
  const Cluster& c = WebCluster(*t);
  ASSERT_EQ(c.endpoints.size(), 2u);
  EXPECT_FALSE(c.endpoints[0].v6);
  EXPECT_EQ((std::array<uint8_t, 4>{c.endpoints[0].ip[0], c.endpoints[0].ip[1], c.endpoints[0].ip[2], c.endpoints[0].ip[3]}),
            (std::array<uint8_t, 4>{10, 1, 0, 1}));
  EXPECT_TRUE(c.endpoints[1].v6);
  EXPECT_EQ(c.endpoints[1].ip[0], 0xfd);
  EXPECT_EQ(c.endpoints[1].ip[15], 5);
}

TEST(LoadBalancer, RoundRobinVisitsEveryEndpointInTurn) {
  auto t = Table(Web(3, "{loadBalancer: {simple: ROUND_ROBIN}}"));
  const Cluster& c = WebCluster(*t);
  Rng rng(1);
  std::map<std::string, int> seen;
  for (int i = 0; i < 300; ++i) seen[PickEndpoint(c, std::nullopt, nullptr, rng, 0)->address]++;
  EXPECT_EQ(seen, (std::map<std::string, int>{{"10.1.0.1", 100}, {"10.1.0.2", 100}, {"10.1.0.3", 100}}));
}

TEST(LoadBalancer, LeastRequestAvoidsTheBusyEndpoint) {
  auto t = Table(Web(2, "{loadBalancer: {simple: LEAST_REQUEST}}"));
  const Cluster& c = WebCluster(*t);
  c.endpoints[0].state->active = 50;  // 10.1.0.1 is busy
  Rng rng(2);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(PickEndpoint(c, std::nullopt, nullptr, rng, 0)->address, "10.1.0.2");
  c.endpoints[0].state->active = 0;
  std::map<std::string, int> seen;
  for (int i = 0; i < 2000; ++i) seen[PickEndpoint(c, std::nullopt, nullptr, rng, 0)->address]++;
  EXPECT_GT(seen["10.1.0.1"], 800) << "idle endpoints share the load";
  EXPECT_GT(seen["10.1.0.2"], 800);
}

TEST(LoadBalancer, RandomSpreadsUniformly) {
  auto t = Table(Web(4, "{loadBalancer: {simple: RANDOM}}"));
  const Cluster& c = WebCluster(*t);
  Rng rng(3);
  std::map<std::string, int> seen;
  for (int i = 0; i < 8000; ++i) seen[PickEndpoint(c, std::nullopt, nullptr, rng, 0)->address]++;
  ASSERT_EQ(seen.size(), 4u);
  for (const auto& [address, n] : seen) EXPECT_NEAR(n, 2000, 250) << address;
}

TEST(LoadBalancer, ConsistentHashKeepsAKeyOnItsEndpointAndMovesOnlyTheLostOnes) {
  auto t = Table(Web(5, "{loadBalancer: {consistentHash: {httpHeaderName: x-user}}}"));
  const Cluster& c = WebCluster(*t);
  Rng rng(4);
  std::map<std::string, std::string> placed;
  std::set<std::string> used;
  for (int u = 0; u < 500; ++u) {
    std::string user = "user-" + std::to_string(u);
    std::vector<std::pair<std::string_view, std::string_view>> headers{{"X-User", user}};
    RequestView r{.method = "GET", .path = "/", .headers = &headers};
    auto hash = RequestHash(c, r);
    ASSERT_TRUE(hash);
    const UpstreamEndpoint* first = PickEndpoint(c, hash, nullptr, rng, 0);
    for (int again = 0; again < 3; ++again) EXPECT_EQ(PickEndpoint(c, hash, nullptr, rng, 0), first);
    placed[user] = first->address;
    used.insert(first->address);
  }
  EXPECT_EQ(used.size(), 5u) << "keys spread over every endpoint";
  // 10.1.0.5 leaves: only its keys move.
  auto smaller = Table(Web(4, "{loadBalancer: {consistentHash: {httpHeaderName: x-user}}}", "2"), t.get());
  const Cluster& c4 = WebCluster(*smaller);
  int moved = 0;
  for (const auto& [user, address] : placed) {
    std::vector<std::pair<std::string_view, std::string_view>> headers{{"x-user", user}};
    RequestView r{.method = "GET", .path = "/", .headers = &headers};
    std::string now = PickEndpoint(c4, RequestHash(c4, r), nullptr, rng, 0)->address;
    if (address != "10.1.0.5") {
      EXPECT_EQ(now, address) << user;
    }
    moved += now != address;
  }
  EXPECT_EQ(moved, std::count_if(placed.begin(), placed.end(), [](const auto& p) { return p.second == "10.1.0.5"; }));
  // Without the key a request is placed at random.
  RequestView none{.method = "GET", .path = "/"};
  EXPECT_FALSE(RequestHash(c, none));
}

TEST(LoadBalancer, HashKeysFromCookieQueryAndSourceIp) {
  auto cookie = Table(Web(3, "{loadBalancer: {consistentHash: {httpCookie: {name: session}}}}"));
  std::vector<std::pair<std::string_view, std::string_view>> headers{{"cookie", "theme=dark; session=abc"}};
  RequestView r{.method = "GET", .path = "/?user=7", .headers = &headers, .source_ip = "10.0.0.9"};
  EXPECT_EQ(RequestHash(WebCluster(*cookie), r), StableHash("abc"));
  auto query = Table(Web(3, "{loadBalancer: {consistentHash: {httpQueryParameterName: user}}}"));
  EXPECT_EQ(RequestHash(WebCluster(*query), r), StableHash("7"));
  auto source = Table(Web(3, "{loadBalancer: {consistentHash: {useSourceIp: true}}}"));
  EXPECT_EQ(RequestHash(WebCluster(*source), r), StableHash("10.0.0.9"));
}

TEST(OutlierDetection, FiveErrorsInARowEjectUntilBaseEjectionTime) {
  auto t = Table(Web(2, "{outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50}}"));
  const Cluster& c = WebCluster(*t);
  const UpstreamEndpoint& bad = c.endpoints[0];
  Rng rng(5);
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(RecordOutcome(c, bad, 503, Sec(1)));
  EXPECT_FALSE(RecordOutcome(c, bad, 200, Sec(1))) << "a success ends the run";
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(RecordOutcome(c, bad, 500, Sec(2)));
  EXPECT_TRUE(RecordOutcome(c, bad, 502, Sec(2))) << "the fifth 5xx in a row ejects";
  for (int i = 0; i < 100; ++i) EXPECT_EQ(PickEndpoint(c, std::nullopt, nullptr, rng, Sec(31)), &c.endpoints[1]);
  // It returns once baseEjectionTime has passed.
  std::set<const UpstreamEndpoint*> after;
  for (int i = 0; i < 100; ++i) after.insert(PickEndpoint(c, std::nullopt, nullptr, rng, Sec(33)));
  EXPECT_EQ(after.size(), 2u);
  // Ejected again soon after: twice as long.
  for (int i = 0; i < 5; ++i) RecordOutcome(c, bad, 503, Sec(40));
  EXPECT_EQ(bad.state->ejected_until_ns.load(), Sec(40) + Sec(60));
  EXPECT_EQ(bad.state->times_ejected, 2);
}

TEST(OutlierDetection, MaxEjectionPercentKeepsTheRestServing) {
  auto t = Table(Web(4, "{outlierDetection: {consecutive5xxErrors: 1, maxEjectionPercent: 50}}"));
  const Cluster& c = WebCluster(*t);
  for (const auto& e : c.endpoints) RecordOutcome(c, e, 503, Sec(1));
  int ejected = 0;
  for (const auto& e : c.endpoints) ejected += e.state->ejected_until_ns.load() > Sec(1);
  EXPECT_EQ(ejected, 2) << "half of four, no more";
  // Gateway errors counted on their own; a 500 breaks their run.
  auto g = Table(Web(2, "{outlierDetection: {consecutive5xxErrors: 0, consecutiveGatewayErrors: 2}}", "2"));
  const Cluster& gc = WebCluster(*g);
  EXPECT_FALSE(RecordOutcome(gc, gc.endpoints[0], 504, Sec(1)));
  EXPECT_FALSE(RecordOutcome(gc, gc.endpoints[0], 500, Sec(1)));
  EXPECT_FALSE(RecordOutcome(gc, gc.endpoints[0], 502, Sec(1)));
  EXPECT_TRUE(RecordOutcome(gc, gc.endpoints[0], 503, Sec(1)));
}

TEST(OutlierDetection, AnEjectionOutlivesASnapshotThatKeepsTheEndpoint) {
  auto t = Table(Web(2, "{outlierDetection: {consecutive5xxErrors: 1, maxEjectionPercent: 50}}"));
  ASSERT_TRUE(RecordOutcome(WebCluster(*t), WebCluster(*t).endpoints[1], 503, Sec(1)));
  auto next = Table(Web(3, "{outlierDetection: {consecutive5xxErrors: 1, maxEjectionPercent: 50}}", "2"), t.get());
  const Cluster& c = WebCluster(*next);
  EXPECT_EQ(c.state, WebCluster(*t).state);
  EXPECT_GT(c.endpoints[1].state->ejected_until_ns.load(), Sec(1)) << "10.1.0.2 is still out";
  EXPECT_EQ(c.endpoints[2].state->ejected_until_ns.load(), 0) << "the new endpoint starts healthy";
  Rng rng(6);
  for (int i = 0; i < 50; ++i) EXPECT_NE(PickEndpoint(c, std::nullopt, nullptr, rng, Sec(2))->address, "10.1.0.2");
}

TEST(Retry, PoliciesFromRetryOnAndIstiosDefault) {
  RetryPolicy def = CompileRetryPolicy(nullptr);
  EXPECT_EQ(def.attempts, 2);
  EXPECT_TRUE(ShouldRetry(def, AttemptFailure::kConnectFailure, 0, "POST")) << "never reached the upstream";
  EXPECT_TRUE(ShouldRetry(def, AttemptFailure::kNone, 503, "GET"));
  EXPECT_FALSE(ShouldRetry(def, AttemptFailure::kNone, 500, "GET"));
  EXPECT_FALSE(ShouldRetry(def, AttemptFailure::kReset, 0, "GET"));
  EXPECT_FALSE(ShouldRetry(def, AttemptFailure::kProtocolError, 0, "GET")) << "garbage is no 503";
  EXPECT_TRUE(ShouldRetry(def, AttemptFailure::kNone, 200, "POST", 14)) << "gRPC UNAVAILABLE, whatever the method";
  EXPECT_TRUE(ShouldRetry(def, AttemptFailure::kNone, 200, "POST", 1)) << "CANCELLED";
  EXPECT_FALSE(ShouldRetry(def, AttemptFailure::kNone, 200, "POST", 13)) << "INTERNAL is not in Istio's default";
  EXPECT_FALSE(ShouldRetry(def, AttemptFailure::kNone, 200, "POST", 0));

  istio::HttpRetry spec{.attempts = 3, .per_try_timeout = istio::Duration(2s), .retry_on = {"5xx"}};
  RetryPolicy p = CompileRetryPolicy(&spec);
  EXPECT_TRUE(ShouldRetry(p, AttemptFailure::kNone, 500, "GET"));
  EXPECT_TRUE(ShouldRetry(p, AttemptFailure::kTimeout, 0, "GET"));
  EXPECT_TRUE(ShouldRetry(p, AttemptFailure::kReset, 0, "PUT"));
  EXPECT_TRUE(ShouldRetry(p, AttemptFailure::kProtocolError, 0, "GET")) << "an answer that is no HTTP: Envoy's protocol-error reset";
  EXPECT_FALSE(ShouldRetry(p, AttemptFailure::kProtocolError, 0, "POST")) << "the upstream saw the POST";
  EXPECT_FALSE(ShouldRetry(p, AttemptFailure::kNone, 500, "POST")) << "a POST the upstream saw is not sent twice";
  EXPECT_FALSE(ShouldRetry(p, AttemptFailure::kNone, 404, "GET"));

  istio::HttpRetry codes{.attempts = 1, .retry_on = {"gateway-error", "429", "retriable-4xx"}};
  RetryPolicy c = CompileRetryPolicy(&codes);
  EXPECT_TRUE(ShouldRetry(c, AttemptFailure::kNone, 504, "GET"));
  EXPECT_FALSE(ShouldRetry(c, AttemptFailure::kNone, 500, "GET"));
  EXPECT_TRUE(ShouldRetry(c, AttemptFailure::kNone, 429, "GET"));
  EXPECT_TRUE(ShouldRetry(c, AttemptFailure::kNone, 409, "GET"));
  EXPECT_TRUE(ShouldRetry(c, AttemptFailure::kReset, 0, "GET")) << "gateway-error covers no answer at all";

  istio::HttpRetry grpc{.attempts = 1, .retry_on = {"internal", "deadline-exceeded", "resource-exhausted"}};
  RetryPolicy g = CompileRetryPolicy(&grpc);
  for (int code : {13, 4, 8}) EXPECT_TRUE(ShouldRetry(g, AttemptFailure::kNone, 200, "POST", code)) << code;
  EXPECT_FALSE(ShouldRetry(g, AttemptFailure::kNone, 200, "POST", 14));

  istio::HttpRetry off{.attempts = 0, .retry_on = {"5xx"}};
  EXPECT_EQ(CompileRetryPolicy(&off).attempts, 0);
}

TEST(Retry, BackoffIsJitteredExponentialAndCapped) {
  Rng rng(7);
  for (int retry = 1; retry <= 6; ++retry) {
    auto cap = std::min(250ms, 25ms * ((1 << retry) - 1));
    std::chrono::milliseconds most{0};
    for (int i = 0; i < 500; ++i) {
      auto b = RetryBackoff(retry, rng);
      EXPECT_LT(b, cap);
      most = std::max(most, b);
    }
    EXPECT_GT(most, cap * 3 / 4) << "the whole range is used";
  }
}

TEST(Retry, TheBudgetBoundsRetriesInFlight) {
  ClusterState state;
  PoolLimits limits;
  state.requests = 100;
  int granted = 0;
  for (int i = 0; i < 50; ++i) granted += TryStartRetry(state, limits);
  EXPECT_EQ(granted, 20) << "20 % of the requests in flight";
  for (int i = 0; i < granted; ++i) EndRetry(state);
  state.requests = 1;
  granted = 0;
  for (int i = 0; i < 10; ++i) granted += TryStartRetry(state, limits);
  EXPECT_EQ(granted, 3) << "never fewer than three";
  for (int i = 0; i < granted; ++i) EndRetry(state);
  limits.max_retries = 1;
  EXPECT_TRUE(TryStartRetry(state, limits));
  EXPECT_FALSE(TryStartRetry(state, limits)) << "connectionPool.http.maxRetries";
}

// Service web's table with one route to it under `fault`.
std::shared_ptr<const RouteTable> WebWithFault(const std::string& fault) {
  return Table(Web(1, "{}") +
               "- apiVersion: networking.istio.io/v1\n  kind: VirtualService\n  metadata: {name: web, namespace: ns}\n"
               "  spec:\n    hosts: [web]\n    http:\n"
               "    - fault: " + fault + "\n"
               "      route: [{destination: {host: web}}]\n");
}

TEST(FaultInjection, PercentagesHoldWithinTolerance) {
  auto t = WebWithFault("{abort: {httpStatus: 418, percentage: {value: 20}}, delay: {fixedDelay: 5ms, percentage: {value: 50}}}");
  const VirtualHost* vh = t->ForDestination("10.96.0.1", 80);
  Rng rng(8);
  int aborted = 0, delayed = 0, both = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    RequestView r{.method = "GET", .path = "/", .port = 80};
    RouteDecision d = Decide(vh, *t, r, rng, 0);
    bool abort = d.local_status == 418, delay = d.delay == 5ms;
    aborted += abort;
    delayed += delay;
    both += abort && delay;
    EXPECT_EQ(d.flags.ToString(), abort && delay ? "DI,FI" : abort ? "FI" : delay ? "DI" : "-");
  }
  // Drawn independently, as Envoy does: both at once 20 % x 50 % of the time (the delay first).
  // Within three standard deviations (57, 71 and 42 draws).
  EXPECT_NEAR(aborted, n * 0.2, 170);
  EXPECT_NEAR(delayed, n * 0.5, 212);
  EXPECT_NEAR(both, n * 0.1, 127);
}

TEST(FaultInjection, AGrpcAbortIsATrailersOnlyAnswer) {
  auto t = WebWithFault("{abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}}");
  Rng rng(1);
  RequestView r{.method = "POST", .path = "/echo.Echo/Unary", .port = 80};
  RouteDecision d = Decide(t->ForDestination("10.96.0.1", 80), *t, r, rng, 0);
  EXPECT_EQ(d.local_status, 200u);
  EXPECT_EQ(d.local_grpc_status, 14);
  EXPECT_TRUE(d.local_body.empty());
  EXPECT_EQ(d.flags.ToString(), "FI");
}

}  // namespace
}  // namespace tern::proxy
