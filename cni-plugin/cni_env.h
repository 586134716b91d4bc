// The CNI_* environment a runtime sets for each call, checked against what each command needs.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>

#include "cni-plugin/cni_error.h"

namespace tern::cni {

enum class Command { kAdd, kDel, kCheck, kVersion, kStatus, kGc };

struct CniEnv {
  Command command = Command::kVersion;
  std::string command_name;
  std::string container_id;
  std::string netns;   // may be empty for DEL
  std::string ifname;
  std::map<std::string, std::string> args;  // CNI_ARGS, "K=V;K2=V2"
};

using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;

// Errors are code 4 and name every missing or malformed variable.
std::optional<Error> ParseCniEnv(const EnvLookup& env, CniEnv* out);

}  // namespace tern::cni
