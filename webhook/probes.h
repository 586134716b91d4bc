// Rewriting application probes to the sidecar's status port, as Istio does: with mTLS on, the
// kubelet cannot reach the app's own probe port through the sidecar, so each HTTP, TCP and gRPC
// probe (and lifecycle hook) is pointed at :15020/app-health/<container>/<kind> and the
// original is carried to the proxy in ISTIO_KUBE_APP_PROBERS, which forwards the check.
#pragma once

#include <nlohmann/json.hpp>

namespace tern::webhook {

// Rewrites the probes and lifecycle hooks of every container in `containers` (a JSON array,
// modified in place) and returns the prober map (path -> original handler), empty if none.
nlohmann::json RewriteAppProbes(nlohmann::json& containers, int status_port);

// The inverse, used when a pod is injected again: puts the originals from `probers` back.
void RestoreAppProbes(nlohmann::json& containers, const nlohmann::json& probers, int status_port);

}  // namespace tern::webhook
