// Sidecar injection as a pure function: a Pod (JSON) and the mesh config in, the injected Pod
// (or the reason it is left alone, or the reason it is refused) out. No I/O; the admission
// handler and `ternctl kube-inject` both call it, and the golden tests call it directly.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/kube/label_selector.h"
#include "core/meshconfig/mesh_config.h"

namespace tern::webhook {

// The workload that owns the pod (Deployment, Job, ...), for the proxy's identity metadata.
struct WorkloadRef {
  std::string api_version, kind, name;
};

struct InjectionRequest {
  std::string namespace_name;
  std::optional<Labels> namespace_labels;  // see decision.h for when these are known
  std::optional<WorkloadRef> workload;     // known to kube-inject; otherwise from ownerReferences
};

enum class Outcome { kInjected, kSkipped, kRejected };
const char* OutcomeName(Outcome outcome);

struct InjectionResult {
  Outcome outcome = Outcome::kSkipped;
  std::string reason;   // why injected / skipped; for kRejected, what to fix (with field paths)
  nlohmann::json pod;   // the injected pod (kInjected only)
};

InjectionResult InjectPod(const nlohmann::json& pod, const InjectionRequest& request, const MeshConfig& mesh);

}  // namespace tern::webhook
