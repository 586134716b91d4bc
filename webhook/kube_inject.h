// `ternctl kube-inject`: offline injection of a multi-document manifest, as `istioctl
// kube-inject` does. Pods are injected whole; Deployments, StatefulSets, DaemonSets,
// ReplicaSets, Jobs and CronJobs have their pod template injected; everything else passes
// through untouched. The namespace's labels are unknown offline, so the pod's own opt-in/out
// and the mesh config decide.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/base/status.h"
#include "core/meshconfig/mesh_config.h"
#include "webhook/injector.h"

namespace tern::webhook {

struct KubeInjectReport {
  std::string object;  // "Deployment/hello"
  Outcome outcome;
  std::string reason;
};

// Injects every document; fails (naming the object) if any pod is rejected.
Result<std::vector<nlohmann::json>> KubeInject(const std::vector<nlohmann::json>& documents, const MeshConfig& mesh,
                                               std::vector<KubeInjectReport>* report);

}  // namespace tern::webhook
