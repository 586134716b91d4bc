// The config snapshot: everything one proxy runs from, in one versioned document. The same text
// is what `tern-proxy --config FILE` reads, what ternd's config stream will send and what the
// proxy's /config_dump shows, so a live proxy's config can be dumped and replayed.
//
//   apiVersion: tern.dev/v1alpha1
//   kind: ProxySnapshot
//   version: "42"                       # opaque; a new snapshot replaces the old one whole
//   mesh: {outboundTrafficPolicy: ALLOW_ANY, trustDomain: cluster.local}
//   workload: {name, namespace, labels, annotations, serviceAccount}     # the proxy's own pod
//   services:                           # what discovery knows
//   - {hostname: product-service.my-app.svc.cluster.local, namespace: my-app,
//      clusterIPs: [10.96.0.20], ports: [{name: http, port: 8080, targetPort: 8080}]}
//   endpoints:
//   - {service: product-service.my-app.svc.cluster.local, address: 10.244.1.5,
//      ports: {http: 8080}, labels: {version: v1}, serviceAccount: product-service}
//   resources:                          # Istio's resources exactly as users wrote them
//   - {apiVersion: networking.istio.io/v1, kind: VirtualService, ...}
//
// Validated as a whole: a snapshot with any error is refused with every error's path, and the
// caller keeps the one it had.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/base/status.h"
#include "core/istio/resource.h"

namespace tern::config {

// How a port's traffic is read: declared (appProtocol, or the port name's prefix, as Istio does)
// or sniffed from the first bytes.
enum class Protocol { kSniff, kHttp, kHttp2, kGrpc, kTcp, kTls, kHttps };
const char* ProtocolName(Protocol p);

struct ServicePort {
  std::string name;
  uint32_t port = 0;
  uint32_t target_port = 0;  // 0: same as port
  std::string app_protocol;
  Protocol protocol = Protocol::kSniff;
};

struct Service {
  std::string hostname;   // FQDN: name.namespace.svc.<domain>
  std::string name, namespace_;
  std::vector<std::string> cluster_ips;
  std::vector<ServicePort> ports;
  std::vector<std::string> export_to;
};

struct Endpoint {
  std::string service;  // a Service hostname
  std::string address;  // IP
  std::map<std::string, uint32_t> ports;  // service port name -> endpoint port
  std::map<std::string, std::string> labels;
  std::string service_account;
  bool ready = true;
};

struct Workload {
  std::string name, namespace_, service_account;
  std::map<std::string, std::string> labels, annotations;
};

struct MeshSettings {
  std::string outbound_traffic_policy = "ALLOW_ANY";  // or REGISTRY_ONLY
  std::string trust_domain = "cluster.local";
};

struct Snapshot {
  std::string version;
  MeshSettings mesh;
  Workload workload;
  std::vector<Service> services;
  std::vector<Endpoint> endpoints;
  std::vector<istio::Resource> resources;
};

// Parses and validates a snapshot document (YAML or JSON text).
Result<std::shared_ptr<const Snapshot>> ParseSnapshot(const std::string& text);
Result<std::shared_ptr<const Snapshot>> ParseSnapshotJson(const nlohmann::json& doc);

// The snapshot a proxy starts from before any config: no services, pass everything through.
std::shared_ptr<const Snapshot> EmptySnapshot();

// Istio's protocol selection for a port: appProtocol, else the name's prefix before '-'.
Protocol DetectProtocol(const std::string& port_name, const std::string& app_protocol);

}  // namespace tern::config
