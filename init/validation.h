// `tern-init --run-validation`: in CNI mode the node plugin programs capture, and this check,
// run unprivileged inside the pod before the proxy starts, proves it took effect. It listens
// where the proxy will listen (the outbound port), connects to an address that capture must
// redirect, and passes only if that connection arrives on the listener with the address it was
// sent to as its original destination. It must not run as the proxy's uid, whose traffic is
// never captured.
#pragma once

#include <chrono>
#include <string>

#include "core/base/status.h"
#include "core/capture/capture_config.h"

namespace tern::init {

struct ValidationTarget {
  std::string ip;  // IPv4
  uint16_t port = 0;
};

// An address and port the config captures (192.0.2.1, a documentation address, when every range
// is captured); an error when outbound capture is configured off or excludes every candidate.
Result<ValidationTarget> PickValidationTarget(const capture::CaptureConfig& config);

// Retries until `timeout`; the error says what was tried and what happened last.
Status ValidateCapture(const capture::CaptureConfig& config, std::chrono::milliseconds timeout);

}  // namespace tern::init
