#include "core/jsonpatch/json_patch.h"

namespace tern {

std::string EscapePointerToken(std::string_view token) {
  std::string out;
  out.reserve(token.size());
  for (char c : token) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out += c;
  }
  return out;
}

namespace {

void Diff(const nlohmann::json& from, const nlohmann::json& to, const std::string& path, nlohmann::json& ops) {
  if (from == to) return;
  if (!from.is_object() || !to.is_object()) {
    ops.push_back({{"op", "replace"}, {"path", path}, {"value", to}});
    return;
  }
  for (auto it = from.begin(); it != from.end(); ++it) {
    if (!to.contains(it.key())) ops.push_back({{"op", "remove"}, {"path", path + "/" + EscapePointerToken(it.key())}});
  }
  for (auto it = to.begin(); it != to.end(); ++it) {
    std::string child = path + "/" + EscapePointerToken(it.key());
    auto old = from.find(it.key());
    if (old == from.end()) ops.push_back({{"op", "add"}, {"path", child}, {"value", it.value()}});
    else Diff(*old, it.value(), child, ops);
  }
}

}  // namespace

nlohmann::json CreatePatch(const nlohmann::json& from, const nlohmann::json& to) {
  nlohmann::json ops = nlohmann::json::array();
  Diff(from, to, "", ops);
  return ops;
}

}  // namespace tern
