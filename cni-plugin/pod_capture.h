// Which pods tern-cni captures, and how: a pure function of the pod object the API returned.
// A pod is captured when it carries the injector's sidecar.istio.io/status annotation and its
// interception mode is not NONE; its capture settings are the traffic.sidecar.istio.io/*
// annotations, which the injector writes in CNI mode, over Istio's defaults.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "core/base/field_errors.h"
#include "core/capture/capture_config.h"

namespace tern::cni {

struct PodCapture {
  bool capture = false;
  std::string reason;  // why not, or what was decided
  capture::CaptureConfig config;
};

// Errors name the annotation ("metadata.annotations[\"traffic...\"]: ...").
PodCapture DecidePodCapture(const nlohmann::json& pod, FieldErrors& errors);

}  // namespace tern::cni
