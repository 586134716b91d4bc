// What discovery knows of the cluster, whatever the source (a folder of manifests today, the
// Kubernetes API next): Services, Pods (their IPs, labels, service accounts, readiness) and the
// mesh resources, each validated on its own. An object that fails is reported with its source
// and field path and left out; it never stops the rest.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace tern::control_plane {

// One document as a source read it ("file.yaml#2" names the third document of file.yaml).
struct SourceDocument {
  std::string origin;
  nlohmann::json doc;
};

struct ModelObject {
  std::string kind, namespace_, name, origin;
  nlohmann::json doc;  // as written, metadata.namespace filled in
};

struct Model {
  uint64_t generation = 0;  // a new model, a new generation
  std::vector<ModelObject> services;
  std::vector<ModelObject> pods;       // those with an IP: the endpoints
  std::vector<ModelObject> resources;  // VirtualService, DestinationRule, AuthorizationPolicy, PeerAuthentication
  std::vector<ModelObject> ignored;    // other kinds (Deployments, ServiceAccounts, ...): listed, not used
  std::vector<std::string> problems;   // "<origin> <kind> <ns>/<name>: <path>: <why>"
};

// Builds a model from documents; objects without a namespace take `default_namespace`.
std::shared_ptr<const Model> BuildModel(const std::vector<SourceDocument>& documents, const std::string& default_namespace,
                                        uint64_t generation);

// A Service's cluster IP: spec.clusterIP when set, else one chosen from 10.96.0.0/16 by a hash of
// namespace/name (stable across rebuilds; a collision takes the next free one in name order).
std::vector<std::pair<const ModelObject*, std::string>> ClusterIps(const Model& model);

}  // namespace tern::control_plane
