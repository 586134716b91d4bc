// The injected environment as the sidecar reads it: every variable the injector writes, and a
// clear error (the variable, the entry, the field) for each value that does not parse.
#include "proxy/sidecar_env.h"

#include <gtest/gtest.h>

namespace tern::proxy {
namespace {

TEST(AppProbersTest, ParsesEveryKindAsTheInjectorWritesIt) {
  auto probers = ParseAppProbers(R"({
    "/app-health/app/livez": {"httpGet": {"port": 80}},
    "/app-health/app/readyz": {"httpGet": {"path": "ready", "port": 9102, "scheme": "HTTPS",
        "httpHeaders": [{"name": "X-Probe", "value": "kubelet"}]}, "timeoutSeconds": 5},
    "/app-health/server/livez": {"grpc": {"port": 50051, "service": "health"}},
    "/app-lifecycle/app/poststartz": {"tcpSocket": {"port": 93}}})");
  ASSERT_TRUE(probers.ok()) << probers.status().message();
  ASSERT_EQ(probers->size(), 4u);
  const AppProbe& live = probers->at("/app-health/app/livez");
  EXPECT_EQ(live.kind, AppProbe::Kind::kHttp);
  EXPECT_EQ(live.port, 80);
  EXPECT_EQ(live.path, "/");
  EXPECT_EQ(live.timeout, std::chrono::seconds(1));  // the kubelet's default
  const AppProbe& ready = probers->at("/app-health/app/readyz");
  EXPECT_TRUE(ready.https);
  EXPECT_EQ(ready.path, "/ready");
  EXPECT_EQ(ready.timeout, std::chrono::seconds(5));
  ASSERT_EQ(ready.headers.size(), 1u);
  EXPECT_EQ(ready.headers[0].second, "kubelet");
  EXPECT_EQ(probers->at("/app-health/server/livez").grpc_service, "health");
  EXPECT_EQ(probers->at("/app-lifecycle/app/poststartz").kind, AppProbe::Kind::kTcp);
}

TEST(AppProbersTest, EachBadValueIsNamedWithItsPath) {
  struct Case {
    const char* json;
    const char* error;
  } cases[] = {
      {"[1]", "ISTIO_KUBE_APP_PROBERS: not a JSON object"},
      {"{\"/a\": {\"httpGet\": {}}}", "ISTIO_KUBE_APP_PROBERS[\"/a\"].httpGet.port: is required"},
      {"{\"/a\": {\"httpGet\": {\"port\": \"http\"}}}", "ISTIO_KUBE_APP_PROBERS[\"/a\"].httpGet.port: named port \"http\" does not name a port of the container"},
      {"{\"/a\": {\"tcpSocket\": {\"port\": 70000}}}", "ISTIO_KUBE_APP_PROBERS[\"/a\"].tcpSocket.port: 70000 is not a port from 1 to 65535"},
      {"{\"/a\": {\"httpGet\": {\"port\": 1, \"scheme\": \"FTP\"}}}", "ISTIO_KUBE_APP_PROBERS[\"/a\"].httpGet.scheme: \"FTP\" is not HTTP or HTTPS"},
      {"{\"/a\": {\"httpGet\": {\"port\": 1, \"httpHeaders\": [{\"name\": \"X\\r\\nEvil\", \"value\": \"v\"}]}}}",
       "ISTIO_KUBE_APP_PROBERS[\"/a\"].httpGet.httpHeaders[0]: not a valid header"},
      {"{\"/a\": {\"exec\": {\"command\": [\"true\"]}}}", "ISTIO_KUBE_APP_PROBERS[\"/a\"]: needs one of httpGet, tcpSocket or grpc"},
      {"{\"/a\": {\"grpc\": {\"port\": 1}, \"timeoutSeconds\": 0}}", "ISTIO_KUBE_APP_PROBERS[\"/a\"].timeoutSeconds: 0 is not 1 to 3600"},
  };
  for (const auto& c : cases) {
    auto r = ParseAppProbers(c.json);
    ASSERT_FALSE(r.ok()) << c.json;
    EXPECT_EQ(r.status().message(), c.error);
  }
}

TEST(SidecarEnvironmentTest, ReadsWhatTheInjectorWritesAndReportsWhatDoesNotParse) {
  std::vector<std::string> problems;
  SidecarEnvironment env = ReadSidecarEnvironment(
      {{"POD_NAME", "product-v1-abc"},
       {"POD_NAMESPACE", "my-app"},
       {"SERVICE_ACCOUNT", "product-service"},
       {"INSTANCE_IP", "10.244.1.5"},
       {"HOST_IP", "not-an-ip"},
       {"TERN_DISCOVERY_ADDRESS", "ternd.tern-system.svc:15012"},
       {"CA_ADDR", "ternd.tern-system.svc"},
       {"TRUST_DOMAIN", "corp.example"},
       {"PROXY_CONFIG", "{\"concurrency\":3}"},
       {"ISTIO_META_POD_PORTS", "[{\"containerPort\":8080}]"},
       {"ISTIO_META_APP_CONTAINERS", "app,helper"},
       {"ISTIO_META_CLUSTER_ID", "Kubernetes"},
       {"ISTIO_PROMETHEUS_ANNOTATIONS", "{\"scrape\":\"true\"}"},
       {"ISTIO_KUBE_APP_PROBERS", "{\"/app-health/app/livez\":{\"tcpSocket\":{\"port\":8080}}}"}},
      &problems);
  EXPECT_EQ(env.pod_name, "product-v1-abc");
  EXPECT_EQ(env.pod_namespace, "my-app");
  EXPECT_EQ(env.service_account, "product-service");
  ASSERT_TRUE(env.instance_ip.has_value());
  EXPECT_EQ(env.instance_ip->to_string(), "10.244.1.5");
  EXPECT_FALSE(env.host_ip.has_value());
  EXPECT_EQ(env.discovery_address, "ternd.tern-system.svc:15012");
  EXPECT_EQ(env.ca_address, "");
  EXPECT_EQ(env.trust_domain, "corp.example");
  EXPECT_EQ(env.proxy_config["concurrency"], 3);
  EXPECT_EQ(env.pod_ports[0]["containerPort"], 8080);
  EXPECT_EQ(env.app_containers, (std::vector<std::string>{"app", "helper"}));
  EXPECT_EQ(env.metadata.at("ISTIO_META_CLUSTER_ID"), "Kubernetes");
  EXPECT_EQ(env.prometheus_annotations["scrape"], "true");
  EXPECT_EQ(env.probers.size(), 1u);
  EXPECT_EQ(problems, (std::vector<std::string>{"HOST_IP: \"not-an-ip\" is not an IP address",
                                                "CA_ADDR: \"ternd.tern-system.svc\" is not HOST:PORT"}));
  problems.clear();
  ReadSidecarEnvironment({{"PROXY_CONFIG", "[]"}, {"ISTIO_KUBE_APP_PROBERS", "{\"/x\": 1}"}}, &problems);
  EXPECT_EQ(problems, (std::vector<std::string>{"PROXY_CONFIG: not a JSON object",
                                                "ISTIO_KUBE_APP_PROBERS[\"/x\"]: not an object"}));
}

}  // namespace
}  // namespace tern::proxy
