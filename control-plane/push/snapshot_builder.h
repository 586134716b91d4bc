// The config snapshot one proxy runs from (core/config/snapshot.h), built from the discovery
// model: every Service with its cluster IPs and ports; as its endpoints, the Pods its selector
// picks in its namespace (address, each service port's target port, labels, service account,
// readiness); the VirtualServices and DestinationRules exactly as written; the mesh settings;
// and the proxy's own workload (its Pod's labels, annotations and service account when the
// model has it). AuthorizationPolicy and PeerAuthentication are kept in the model for the
// security issue; the proxy does not read them yet, so they are not sent.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "control-plane/discovery/model.h"
#include "core/meshconfig/mesh_config.h"

namespace tern::control_plane {

struct ProxyIdentity {
  std::string pod, namespace_;
};

// The snapshot without its version (so an unchanged one can be told apart from a new one).
nlohmann::json BuildProxySnapshot(const Model& model, const MeshConfig& mesh, const ProxyIdentity& proxy,
                                  const std::string& cluster_domain = "cluster.local");

// What every proxy's snapshot has in common (all but its workload), built and serialized once
// per model: a proxy's text is this with its version and workload appended, which is exactly
// BuildProxySnapshot's compact dump (its keys sort before "version" and "workload").
struct SharedSnapshot {
  std::string prefix;  // the compact JSON of the common part, without its closing brace
};
SharedSnapshot BuildSharedSnapshot(const Model& model, const MeshConfig& mesh,
                                   const std::string& cluster_domain = "cluster.local");
nlohmann::json WorkloadOf(const Model& model, const ProxyIdentity& proxy);
// BuildProxySnapshot(...) with "version" set (when not empty), as compact JSON.
std::string SnapshotText(const SharedSnapshot& shared, const nlohmann::json& workload, const std::string& version);

}  // namespace tern::control_plane
