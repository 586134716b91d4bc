#include "cni-plugin/cni_env.h"

#include <vector>

namespace tern::cni {

namespace {

const std::map<std::string, Command>& Commands() {
  static const std::map<std::string, Command> commands = {
      {"ADD", Command::kAdd},       {"DEL", Command::kDel},       {"CHECK", Command::kCheck},
      {"VERSION", Command::kVersion}, {"STATUS", Command::kStatus}, {"GC", Command::kGc}};
  return commands;
}

}  // namespace

std::optional<Error> ParseCniEnv(const EnvLookup& env, CniEnv* out) {
  CniEnv e;
  auto command = env("CNI_COMMAND");
  if (!command || command->empty()) return Error{kInvalidEnvironment, "CNI_COMMAND: required", ""};
  auto it = Commands().find(*command);
  if (it == Commands().end()) {
    return Error{kInvalidEnvironment,
                 "CNI_COMMAND: \"" + *command + "\" is not one of ADD, DEL, CHECK, VERSION, STATUS, GC", ""};
  }
  e.command = it->second;
  e.command_name = *command;
  bool attach = e.command == Command::kAdd || e.command == Command::kDel || e.command == Command::kCheck;
  if (attach) {
    std::vector<std::string> missing;
    auto take = [&](const char* name, std::string* field, bool required) {
      auto v = env(name);
      if (v && !v->empty()) *field = *v;
      else if (required) missing.push_back(name);
    };
    take("CNI_CONTAINERID", &e.container_id, true);
    take("CNI_NETNS", &e.netns, e.command != Command::kDel);  // DEL may come after the netns is gone
    take("CNI_IFNAME", &e.ifname, true);
    if (!missing.empty()) {
      std::string names;
      for (const auto& m : missing) names += (names.empty() ? "" : ", ") + m;
      return Error{kInvalidEnvironment, "required for " + *command + " but not set: " + names, ""};
    }
    if (auto args = env("CNI_ARGS")) {
      size_t at = 0;
      while (at <= args->size()) {
        size_t semi = args->find(';', at);
        if (semi == std::string::npos) semi = args->size();
        std::string item = args->substr(at, semi - at);
        at = semi + 1;
        if (item.empty()) continue;
        size_t eq = item.find('=');
        if (eq == std::string::npos || eq == 0) {
          return Error{kInvalidEnvironment, "CNI_ARGS: \"" + item + "\" is not KEY=VALUE", ""};
        }
        e.args[item.substr(0, eq)] = item.substr(eq + 1);
      }
    }
  }
  *out = std::move(e);
  return std::nullopt;
}

}  // namespace tern::cni
