// tern-init's command line: istio-iptables' flags, short and long, with the same names and
// meanings, each also settable from the environment (the long name in upper snake case, e.g.
// ISTIO_INBOUND_PORTS); a flag beats its variable.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/base/status.h"
#include "core/capture/capture_config.h"

namespace tern::init {

struct InitOptions {
  capture::CaptureConfig config;
  bool dry_run = false;
  bool cleanup = false;
  bool run_validation = false;
  int validation_timeout_ms = 10000;
  bool help = false;
};

using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;

// Every problem is reported at once, naming the flag.
Result<InitOptions> ParseInitFlags(const std::vector<std::string>& args, const EnvLookup& env);

extern const char* const kInitUsage;

}  // namespace tern::init
