#include "webhook/decision.h"

#include "core/annotations/keys.h"

namespace tern::webhook {
namespace {

const std::string* Find(const Labels& m, const char* key) {
  auto it = m.find(key);
  return it == m.end() ? nullptr : &it->second;
}

// Istio reads sidecar.istio.io/inject leniently: y/yes/true/on inject, anything else does not.
bool TruthyInjectValue(const std::string& v) { return v == "y" || v == "yes" || v == "true" || v == "on"; }

}  // namespace

Decision DecideInjection(const DecisionInput& in, const MeshConfig& mesh) {
  if (in.host_network) return {false, "pod uses hostNetwork: a sidecar would capture the node's traffic"};
  if (in.namespace_name == "kube-system" || in.namespace_name == "kube-public" ||
      in.namespace_name == "kube-node-lease") {
    return {false, "namespace " + in.namespace_name + " is never injected"};
  }

  // Pod-level revision pin: a pod that names another revision belongs to that revision's injector.
  if (const std::string* rev = Find(in.pod_labels, keys::kRevisionLabel)) {
    if (*rev != mesh.revision) return {false, "pod label istio.io/rev=" + *rev + " selects another revision"};
  }

  // Namespace opt-in, when the namespace's labels are known.
  bool namespace_selects = true;
  std::string namespace_reason = "namespace selected by the webhook's namespaceSelector";
  if (in.namespace_labels) {
    const std::string* injection = Find(*in.namespace_labels, keys::kInjectionNamespaceLabel);
    const std::string* rev = Find(*in.namespace_labels, keys::kRevisionLabel);
    if (injection && *injection == "disabled") {
      return {false, "namespace " + in.namespace_name + " has istio-injection=disabled"};
    }
    if (injection && *injection == "enabled") {
      namespace_reason = "namespace " + in.namespace_name + " has istio-injection=enabled";
    } else if (rev) {
      // istio-injection takes precedence over istio.io/rev when both are set (handled above).
      if (*rev != mesh.revision) {
        return {false, "namespace " + in.namespace_name + " has istio.io/rev=" + *rev + ", this is revision " +
                           mesh.revision};
      }
      namespace_reason = "namespace " + in.namespace_name + " has istio.io/rev=" + *rev;
    } else {
      namespace_selects = false;
      namespace_reason = "namespace " + in.namespace_name + " is not labelled for injection";
    }
  }

  // Explicit pod opt-in/out: the label wins over the legacy annotation.
  const std::string* explicit_value = Find(in.pod_labels, keys::kInjectLabel);
  const char* source = "label";
  if (!explicit_value) {
    explicit_value = Find(in.pod_annotations, keys::kInjectLabel);
    source = "annotation";
  }
  if (explicit_value) {
    bool yes = TruthyInjectValue(*explicit_value);
    std::string why = std::string("pod ") + source + " sidecar.istio.io/inject=" + *explicit_value;
    if (!yes) return {false, why};
    // An explicit opt-in works in any namespace the webhook is called for (object selector variant).
    return {true, why};
  }
  // Pod-level istio.io/rev=<ours> is an opt-in of its own (the rev.object webhook variant).
  if (Find(in.pod_labels, keys::kRevisionLabel)) return {true, "pod label istio.io/rev=" + mesh.revision};
  if (!namespace_selects) return {false, namespace_reason};

  // No explicit choice: the selectors of the mesh config, then the default policy.
  for (const auto& sel : mesh.injection.never_inject_selector) {
    if (sel.Matches(in.pod_labels)) return {false, "pod labels match injection.neverInjectSelector"};
  }
  for (const auto& sel : mesh.injection.always_inject_selector) {
    if (sel.Matches(in.pod_labels)) return {true, "pod labels match injection.alwaysInjectSelector"};
  }
  if (!mesh.injection.default_policy_enabled) return {false, "injection.defaultPolicy is disabled and the pod did not opt in"};
  return {true, namespace_reason};
}

}  // namespace tern::webhook
