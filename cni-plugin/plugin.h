// tern-cni's commands: one call in (CNI_* environment and the configuration on stdin), one
// answer out (stdout, exit status and a log line for the runtime's log). No globals, so a test
// can call it in-process as often as it likes.
#pragma once

#include <string>
#include <string_view>

#include "cni-plugin/cni_env.h"

namespace tern::cni {

struct PluginOutput {
  int exit_code = 0;
  std::string stdout_text;  // the result, the version info, or the error JSON
  std::string log;          // one line for stderr: what was done to which pod, or why not
};

PluginOutput RunPlugin(const EnvLookup& env, std::string_view stdin_bytes);

}  // namespace tern::cni
