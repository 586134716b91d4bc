// Builds AdmissionReview requests exactly as kube-apiserver sends them for a Pod CREATE, and
// turns workload manifests into the Pods their controllers would create. Test and demo helper.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace tern::webhook {

// The Pod a controller creates from a workload's template (ReplicaSet-style names, owner
// reference, pod-template-hash label); a Pod document is returned as it is.
nlohmann::json PodFromWorkload(const nlohmann::json& object, const std::string& namespace_name);

// An admission.k8s.io/v1 (or v1beta1) AdmissionReview for creating `pod` in `namespace_name`.
nlohmann::json PodCreateReview(const nlohmann::json& pod, const std::string& namespace_name, const std::string& uid,
                               bool dry_run = false, const std::string& api_version = "admission.k8s.io/v1");

}  // namespace tern::webhook
