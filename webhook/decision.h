// Whether a pod gets a sidecar, and why — the injection policy of Istio's sidecar injector.
//
// Namespace labels: a Pod's AdmissionReview carries no Namespace object, so kube-apiserver's
// namespaceSelector (manifests/base/webhook.yaml) is the first filter: the webhook is only called for
// pods in namespaces that opted in. When ternd can read namespaces from the Kubernetes API it
// passes their labels here and they are checked again (a namespace relabelled `disabled` wins
// even if a stale webhook configuration still matches); when it cannot, `namespace_labels` is
// empty and the selector's verdict is trusted.
#pragma once

#include <optional>
#include <string>

#include "core/kube/label_selector.h"
#include "core/meshconfig/mesh_config.h"

namespace tern::webhook {

struct Decision {
  bool inject = false;
  std::string reason;  // one sentence for the log line and the admission response
};

struct DecisionInput {
  std::string namespace_name;
  std::optional<Labels> namespace_labels;
  Labels pod_labels;
  Labels pod_annotations;
  bool host_network = false;
};

Decision DecideInjection(const DecisionInput& input, const MeshConfig& mesh);

}  // namespace tern::webhook
