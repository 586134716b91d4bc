// Checks that a Pod (as JSON) has the shape the injector relies on, before anything reads it.
// Kubernetes has validated nothing yet when a mutating webhook runs, so every field the injector
// touches is checked here and reported with its path ("spec.containers[1].ports[0].containerPort").
#pragma once

#include <nlohmann/json_fwd.hpp>

#include "core/base/field_errors.h"
#include "core/kube/label_selector.h"

namespace tern::webhook {

// Adds one error per malformed field under `prefix` (e.g. "request.object").
void ValidatePodShape(const nlohmann::json& pod, const std::string& prefix, FieldErrors& errors);

// metadata.labels / metadata.annotations of a pod that passed ValidatePodShape.
Labels PodLabels(const nlohmann::json& pod);
Labels PodAnnotations(const nlohmann::json& pod);

// Ports the sidecar owns; an application container may not declare them.
bool IsSidecarReservedPort(int port);

}  // namespace tern::webhook
