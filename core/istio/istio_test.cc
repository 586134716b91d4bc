// Istio's VirtualService and DestinationRule: the seed's resources read verbatim from the seed
// document (and from manifests/examples), each Istio feature Tern routes on, and bad input with
// the path of every problem.
#include <gtest/gtest.h>

#include "core/base/files.h"
#include "core/istio/duration.h"
#include "core/istio/resource.h"
#include "core/yaml/yaml_json.h"

namespace tern::istio {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// The ```yaml blocks of a markdown document whose text contains `kind: <kind>`.
std::vector<json> SeedDocuments(const std::string& kind) {
  auto text = ReadFile(std::string(TERN_SHARED_DIR) + "/seed/service-mesh-pattern.md");
  EXPECT_TRUE(text.ok());
  std::vector<json> out;
  size_t at = 0;
  while ((at = text->find("```yaml\n", at)) != std::string::npos) {
    size_t end = text->find("```", at + 8);
    std::string block = text->substr(at + 8, end - at - 8);
    at = end + 3;
    if (block.find("kind: " + kind + "\n") == std::string::npos) continue;
    auto docs = ParseYamlDocuments(block);
    EXPECT_TRUE(docs.ok()) << docs.status().message();
    if (docs.ok()) out.insert(out.end(), docs->begin(), docs->end());
  }
  return out;
}

Resource MustParse(const std::string& yaml) {
  auto doc = ParseYaml(yaml);
  EXPECT_TRUE(doc.ok()) << doc.status().message();
  auto r = ParseResource(*doc);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? *r : Resource{};
}

std::string ErrorOf(const std::string& yaml) {
  auto doc = ParseYaml(yaml);
  if (!doc.ok()) return "YAML: " + doc.status().message();
  auto r = ParseResource(*doc);
  return r.ok() ? "accepted" : r.status().message();
}

TEST(Duration, GoAndProtobufForms) {
  EXPECT_EQ(*ParseDuration("10s"), 10s);
  EXPECT_EQ(*ParseDuration("1.5s"), 1500ms);
  EXPECT_EQ(*ParseDuration("250ms"), 250ms);
  EXPECT_EQ(*ParseDuration("1m30s"), 90s);
  EXPECT_EQ(*ParseDuration("2h"), 7200s);
  EXPECT_EQ(*ParseDuration("0"), 0s);
  EXPECT_EQ(ParseDuration("10").status().message(),
            "\"10\" is not a duration (missing unit; e.g. 10s, 1.5s, 250ms, 1m30s)");
  EXPECT_FALSE(ParseDuration("s").ok());
  EXPECT_FALSE(ParseDuration("5d").ok());
  EXPECT_FALSE(ParseDuration("-1s").ok());
  EXPECT_FALSE(ParseDuration("99999999999h").ok());
}

void ExpectSeedVirtualService(const Resource& r) {
  ASSERT_EQ(r.meta.kind, "VirtualService");
  const auto& vs = std::get<VirtualService>(r.spec);
  EXPECT_EQ(vs.hosts, std::vector<std::string>{"product-service"});
  ASSERT_EQ(vs.http.size(), 2u);
  // x-canary: "true" forces v2.
  ASSERT_EQ(vs.http[0].match.size(), 1u);
  const StringMatch& canary = vs.http[0].match[0].headers.at("x-canary");
  EXPECT_EQ(canary.kind, StringMatch::Kind::kExact);
  EXPECT_EQ(canary.value, "true");
  ASSERT_EQ(vs.http[0].route.size(), 1u);
  EXPECT_EQ(vs.http[0].route[0].destination.subset, "v2");
  EXPECT_EQ(vs.http[0].route[0].weight, 100);
  // Everything else: 90/10, retries, timeout.
  const HttpRoute& split = vs.http[1];
  EXPECT_TRUE(split.match.empty());
  ASSERT_EQ(split.route.size(), 2u);
  EXPECT_EQ(split.route[0].destination.subset, "v1");
  EXPECT_EQ(split.route[0].weight, 90);
  EXPECT_EQ(split.route[1].destination.subset, "v2");
  EXPECT_EQ(split.route[1].weight, 10);
  ASSERT_TRUE(split.retries);
  EXPECT_EQ(split.retries->attempts, 3);
  EXPECT_EQ(split.retries->per_try_timeout, Duration(2s));
  EXPECT_EQ(split.retries->retry_on, (std::vector<std::string>{"connect-failure", "refused-stream", "5xx"}));
  EXPECT_EQ(split.timeout, Duration(10s));
  EXPECT_TRUE(vs.not_enforced.empty());
}

void ExpectSeedDestinationRule(const Resource& r) {
  ASSERT_EQ(r.meta.kind, "DestinationRule");
  const auto& dr = std::get<DestinationRule>(r.spec);
  EXPECT_EQ(dr.host, "product-service");
  ASSERT_TRUE(dr.traffic_policy);
  const TrafficPolicy& tp = *dr.traffic_policy;
  EXPECT_EQ(tp.load_balancer->simple, "LEAST_REQUEST") << "LEAST_CONN is Istio's older name for LEAST_REQUEST";
  EXPECT_EQ(tp.connection_pool->max_connections, 100);
  EXPECT_EQ(tp.connection_pool->http1_max_pending_requests, 100);
  EXPECT_EQ(tp.connection_pool->http2_max_requests, 1000);
  EXPECT_EQ(tp.connection_pool->h2_upgrade_policy, "UPGRADE");
  EXPECT_EQ(tp.outlier_detection->consecutive_5xx_errors, 5);
  EXPECT_EQ(tp.outlier_detection->interval, Duration(30s));
  EXPECT_EQ(tp.outlier_detection->base_ejection_time, Duration(30s));
  EXPECT_EQ(tp.outlier_detection->max_ejection_percent, 50);
  EXPECT_EQ(tp.tls->mode, "ISTIO_MUTUAL");
  ASSERT_EQ(dr.subsets.size(), 2u);
  EXPECT_EQ(dr.subsets[0].name, "v1");
  EXPECT_EQ(dr.subsets[0].labels, (std::map<std::string, std::string>{{"version", "v1"}}));
  EXPECT_EQ(dr.subsets[1].labels.at("version"), "v2");
  EXPECT_TRUE(dr.not_enforced.empty());
}

TEST(Seed, TheSeedsResourcesParseVerbatim) {
  auto vs = SeedDocuments("VirtualService");
  ASSERT_EQ(vs.size(), 1u);
  auto r = ParseResource(vs[0]);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ExpectSeedVirtualService(*r);
  auto dr = SeedDocuments("DestinationRule");
  ASSERT_EQ(dr.size(), 1u);
  r = ParseResource(dr[0]);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ExpectSeedDestinationRule(*r);
}

TEST(Seed, TheExamplesManifestsCarryTheSameResources) {
  for (const char* file : {"virtualservice.yaml", "destinationrule.yaml"}) {
    auto text = ReadFile(std::string(TERN_SOURCE_DIR) + "/manifests/examples/" + file);
    ASSERT_TRUE(text.ok());
    auto doc = ParseYaml(*text);
    ASSERT_TRUE(doc.ok());
    auto r = ParseResource(*doc);
    ASSERT_TRUE(r.ok()) << r.status().message();
    if (r->meta.kind == "VirtualService") ExpectSeedVirtualService(*r);
    else ExpectSeedDestinationRule(*r);
  }
}

TEST(VirtualService, EveryRoutingFeature) {
  Resource r = MustParse(R"(
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop, resourceVersion: "12"}
spec:
  hosts: [reviews.shop.svc.cluster.local]
  http:
  - name: api
    match:
    - uri: {prefix: /api/}
      method: {exact: GET}
      headers:
        x-user: {regex: "^(alice|bob)$"}
        x-debug: {}
      queryParams: {v: {exact: "2"}}
      sourceLabels: {app: frontend}
      ignoreUriCase: true
    rewrite: {uri: /, authority: reviews-v2}
    route:
    - destination: {host: reviews, subset: v2, port: {number: 9080}}
      headers: {response: {set: {x-served-by: v2}, remove: [server]}}
    headers: {request: {add: {x-mesh: tern}}}
    fault:
      delay: {percentage: {value: 5}, fixedDelay: 1.5s}
      abort: {percentage: {value: 0.1}, httpStatus: 503}
    mirror: {host: reviews, subset: shadow}
    mirrorPercentage: {value: 25}
  - match: [{uri: {exact: /old}}]
    redirect: {uri: /new, redirectCode: 308}
  - match: [{authority: {prefix: status.}}]
    directResponse: {status: 200, body: {string: ok}}
  - route: [{destination: {host: reviews, subset: v1}}]
    corsPolicy: {allowOrigins: [{exact: "*"}]}
  tcp:
  - match: [{port: 27017, destinationSubnets: [10.1.0.0/16]}]
    route: [{destination: {host: mongo}}]
)");
  const auto& vs = std::get<VirtualService>(r.spec);
  EXPECT_EQ(r.meta.namespace_, "shop");
  ASSERT_EQ(vs.http.size(), 4u);
  const HttpMatchRequest& m = vs.http[0].match[0];
  EXPECT_EQ(m.uri->kind, StringMatch::Kind::kPrefix);
  EXPECT_EQ(m.headers.at("x-user").kind, StringMatch::Kind::kRegex);
  EXPECT_EQ(m.headers.at("x-debug").kind, StringMatch::Kind::kPresent);
  EXPECT_EQ(m.query_params.at("v").value, "2");
  EXPECT_EQ(m.source_labels.at("app"), "frontend");
  EXPECT_TRUE(m.ignore_uri_case);
  EXPECT_EQ(vs.http[0].rewrite->uri, "/");
  EXPECT_EQ(vs.http[0].route[0].destination.port, 9080u);
  EXPECT_EQ(vs.http[0].route[0].headers.response.remove, std::vector<std::string>{"server"});
  EXPECT_EQ(vs.http[0].headers.request.add.at("x-mesh"), "tern");
  EXPECT_EQ(vs.http[0].fault->delay->fixed_delay, Duration(1500ms));
  EXPECT_DOUBLE_EQ(vs.http[0].fault->abort->percentage, 0.1);
  EXPECT_EQ(vs.http[0].fault->abort->http_status, 503u);
  EXPECT_EQ(vs.http[0].mirror->subset, "shadow");
  EXPECT_DOUBLE_EQ(vs.http[0].mirror_percentage, 25);
  EXPECT_EQ(vs.http[1].redirect->redirect_code, 308u);
  EXPECT_EQ(vs.http[2].direct_response->body, "ok");
  ASSERT_EQ(vs.tcp.size(), 1u);
  EXPECT_EQ(vs.tcp[0].match[0].port, 27017u);
  EXPECT_EQ(vs.not_enforced, std::vector<std::string>{"spec.http[3].corsPolicy"}) << "accepted, reported, not refused";
}

TEST(VirtualService, BadInputNamesEveryProblem) {
  const std::string head = "apiVersion: networking.istio.io/v1beta1\nkind: VirtualService\nmetadata: {name: vs}\n";
  struct Case {
    std::string spec, error;
  } cases[] = {
      {"spec: {http: [{route: [{destination: {host: a}}]}]}", "spec.hosts: at least one host is required"},
      {"spec: {hosts: [a]}", "spec: needs at least one of http, tcp, tls"},
      {"spec: {hosts: [a], http: [{route: [{destination: {host: a}, weight: 90}, {destination: {host: b}, weight: 20}]}]}",
       "spec.http[0].route: weights add up to 110, not 100"},
      {"spec: {hosts: [a], http: [{route: [{destination: {host: a}}, {destination: {host: b}}]}]}",
       "spec.http[0].route: several destinations need weights that add up to 100"},
      {"spec: {hosts: [a], http: [{route: [{destination: {host: a}, weight: 101}]}]}",
       "spec.http[0].route[0].weight: 101 is out of range [0, 100]"},
      {"spec: {hosts: [a], http: [{route: [{destination: {subset: v1}}]}]}", "spec.http[0].route[0].destination.host: required"},
      {"spec: {hosts: [a], http: [{match: [{headers: {X-Canary: {exact: y}}}], route: [{destination: {host: a}}]}]}",
       "spec.http[0].match[0].headers.X-Canary: header names must be lower-case tokens"},
      {"spec: {hosts: [a], http: [{match: [{uri: {exact: /a, prefix: /b}}], route: [{destination: {host: a}}]}]}",
       "spec.http[0].match[0].uri: set exactly one of exact, prefix, regex"},
      {"spec: {hosts: [a], http: [{match: [{uri: {regex: \"(\"}}], route: [{destination: {host: a}}]}]}",
       "spec.http[0].match[0].uri.regex: \"(\" is not a valid RE2 regular expression: missing ): ("},
      {"spec: {hosts: [a], http: [{match: [{uri: {regex: \"(a)\\\\1\"}}], route: [{destination: {host: a}}]}]}",
       "is not a valid RE2 regular expression: invalid escape sequence"},
      {"spec: {hosts: [a], http: [{timeout: 10, route: [{destination: {host: a}}]}]}", "spec.http[0].timeout: must be a string"},
      {"spec: {hosts: [a], http: [{timeout: 10x, route: [{destination: {host: a}}]}]}",
       "spec.http[0].timeout: \"10x\" is not a duration"},
      {"spec: {hosts: [a], http: [{retries: {attempts: 3, retryOn: \"5xx,sometimes\"}, route: [{destination: {host: a}}]}]}",
       "spec.http[0].retries.retryOn: \"sometimes\" is not a retry policy"},
      {"spec: {hosts: [a], http: [{}]}", "spec.http[0]: needs one of route, redirect, directResponse"},
      {"spec: {hosts: [a], http: [{redirect: {uri: /x}, route: [{destination: {host: a}}]}]}",
       "spec.http[0]: route, redirect and directResponse exclude each other"},
      {"spec: {hosts: [a], http: [{fault: {abort: {percentage: {value: 120}, httpStatus: 503}}, route: [{destination: {host: a}}]}]}",
       "spec.http[0].fault.abort.percentage.value: 120 is out of range [0, 100]"},
      {"spec: {hosts: [a], http: [{route: [{destination: {host: a}}], retry: {attempts: 3}}]}", "spec.http[0].retry: unknown field"},
      {"spec: {hosts: [a], http: [{fault: {abort: {grpcStatus: \"14\"}}, route: [{destination: {host: a}}]}]}",
       "spec.http[0].fault.abort.grpcStatus: \"14\" is not a gRPC status name"},
      {"spec: {hosts: [a], http: [{fault: {abort: {grpcStatus: UNAVAILABLE, httpStatus: 503}}, route: [{destination: {host: a}}]}]}",
       "spec.http[0].fault.abort: set one of httpStatus, grpcStatus, http2Error"},
      {"spec: {hosts: [a], tls: [{route: [{destination: {host: a}}]}]}", "spec.tls[0].match: "},
      {"spec: {hosts: [a], tcp: [{match: [{destinationSubnets: [10.0.0.0/33]}], route: [{destination: {host: a}}]}]}",
       "spec.tcp[0].match[0].destinationSubnets[0]: "},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.spec);
    std::string err = ErrorOf(head + c.spec);
    EXPECT_NE(err.find(c.error), std::string::npos) << err;
    EXPECT_EQ(err.rfind("VirtualService vs: ", 0), 0u) << err;
  }
}

TEST(DestinationRule, BadInputNamesEveryProblem) {
  const std::string head = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: dr}\n";
  struct Case {
    std::string spec, error;
  } cases[] = {
      {"spec: {subsets: [{name: v1}]}", "spec.host: required"},
      {"spec: {host: a, subsets: [{name: v1}, {name: v1}]}", "spec.subsets[1].name: subset \"v1\" is defined twice"},
      {"spec: {host: a, subsets: [{name: V1}]}", "spec.subsets[0].name: required: a DNS label"},
      {"spec: {host: a, trafficPolicy: {loadBalancer: {simple: FASTEST}}}",
       "spec.trafficPolicy.loadBalancer.simple: \"FASTEST\" is not one of UNSPECIFIED, ROUND_ROBIN, LEAST_REQUEST"},
      {"spec: {host: a, trafficPolicy: {tls: {mode: MUTUAL}}}",
       "spec.trafficPolicy.tls.mode: MUTUAL needs clientCertificate and privateKey, or credentialName"},
      {"spec: {host: a, trafficPolicy: {outlierDetection: {maxEjectionPercent: 150}}}",
       "spec.trafficPolicy.outlierDetection.maxEjectionPercent: 150 is out of range [0, 100]"},
      {"spec: {host: a, trafficPolicy: {outlierDetection: {interval: soon}}}",
       "spec.trafficPolicy.outlierDetection.interval: \"soon\" is not a duration"},
      {"spec: {host: a, trafficPolicy: {connectionPool: {tcp: {maxConnections: 0}}}}",
       "spec.trafficPolicy.connectionPool.tcp.maxConnections: 0 is out of range"},
      {"spec: {host: a, trafficPolicy: {portLevelSettings: [{port: {number: 80}}, {port: {number: 80}}]}}",
       "spec.trafficPolicy.portLevelSettings[1].port.number: port 80 is listed twice"},
      {"spec: {host: a, subsets: [{name: v1, labels: {version: 1}}]}", "spec.subsets[0].labels.version: must be a string"},
      {"spec: {host: a, trafficPolicy: {connectionPool: {http: {h2UpgradePolicy: ALWAYS}}}}",
       "spec.trafficPolicy.connectionPool.http.h2UpgradePolicy: \"ALWAYS\" is not one of DEFAULT, DO_NOT_UPGRADE, UPGRADE"},
      {"spec: {host: a, trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x, useSourceIp: true}}}}",
       "spec.trafficPolicy.loadBalancer.consistentHash: httpHeaderName, httpCookie, useSourceIp and httpQueryParameterName exclude each other"},
      {"spec: {host: a, trafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {ttl: 0s}}}}}",
       "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.name: required"},
      {"spec: {host: a, trafficPolicy: {connectionPool: {tcp: {tcpKeepalive: {probes: 0}}}}}",
       "spec.trafficPolicy.connectionPool.tcp.tcpKeepalive.probes: 0 is out of range"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.spec);
    std::string err = ErrorOf(head + c.spec);
    EXPECT_NE(err.find(c.error), std::string::npos) << err;
  }
}

TEST(DestinationRule, HashKeysAndKeepalive) {
  Resource r = MustParse(
      "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: dr}\n"
      "spec:\n  host: a\n  trafficPolicy:\n"
      "    loadBalancer: {consistentHash: {httpCookie: {name: session, ttl: 0s}}}\n"
      "    connectionPool: {tcp: {tcpKeepalive: {probes: 3, time: 60s, interval: 5s}}}\n"
      "  subsets:\n  - name: q\n    trafficPolicy: {loadBalancer: {consistentHash: {httpQueryParameterName: user}}}\n");
  const auto& dr = std::get<DestinationRule>(r.spec);
  EXPECT_EQ(dr.traffic_policy->load_balancer->hash_cookie, "session");
  EXPECT_TRUE(dr.traffic_policy->load_balancer->consistent_hash());
  EXPECT_EQ(dr.traffic_policy->connection_pool->tcp_keepalive->probes, 3);
  EXPECT_EQ(dr.traffic_policy->connection_pool->tcp_keepalive->time, Duration(60s));
  EXPECT_EQ(dr.traffic_policy->connection_pool->tcp_keepalive->interval, Duration(5s));
  EXPECT_EQ(dr.subsets[0].traffic_policy->load_balancer->hash_query_param, "user");
  EXPECT_EQ(dr.not_enforced, std::vector<std::string>{"spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.ttl"});
}

TEST(VirtualService, AFaultWithoutPercentageNeverFires) {
  Resource r = MustParse(
      "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: vs}\n"
      "spec: {hosts: [a], http: [{fault: {abort: {httpStatus: 500}, delay: {fixedDelay: 1s}}, route: [{destination: {host: a}}]}]}\n");
  const auto& fault = *std::get<VirtualService>(r.spec).http[0].fault;
  EXPECT_DOUBLE_EQ(fault.abort->percentage, 0) << "Istio: an unset percentage is 0";
  EXPECT_DOUBLE_EQ(fault.delay->percentage, 0);
}

TEST(VirtualService, AFaultMayAbortWithAGrpcStatus) {
  Resource r = MustParse(
      "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: vs}\n"
      "spec: {hosts: [a], http: [{fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 50}}}, "
      "route: [{destination: {host: a}}]}]}\n");
  const auto& abort = *std::get<VirtualService>(r.spec).http[0].fault->abort;
  EXPECT_EQ(abort.grpc_status, 14);
  EXPECT_EQ(abort.http_status, 0u);
  EXPECT_DOUBLE_EQ(abort.percentage, 50);
  EXPECT_TRUE(std::get<VirtualService>(r.spec).not_enforced.empty());
}

TEST(Resource, EnvelopeErrors) {
  EXPECT_EQ(ErrorOf("apiVersion: networking.istio.io/v2\nkind: VirtualService\nmetadata: {name: x}\nspec: {hosts: [a], "
                    "http: [{route: [{destination: {host: a}}]}]}"),
            "VirtualService x: apiVersion: \"networking.istio.io/v2\" is not networking.istio.io/v1, v1beta1 or v1alpha3");
  EXPECT_EQ(ErrorOf("apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec: {}"),
            "Gateway g: kind: \"Gateway\" is not a resource Tern reads here (VirtualService, DestinationRule)");
  EXPECT_EQ(ErrorOf("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nspec: {host: a}"),
            "DestinationRule: metadata.name: required");
  EXPECT_EQ(ErrorOf("- a list"), "resource: <root>: must be an object; metadata.name: required; spec: required; kind: "
                                 "\"\" is not a resource Tern reads here (VirtualService, DestinationRule)");
}

}  // namespace
}  // namespace tern::istio
