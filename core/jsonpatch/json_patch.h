// RFC 6902 JSON Patch generation and RFC 6901 JSON Pointer escaping.
//
// CreatePatch diffs two documents into add/remove/replace operations. Objects are diffed key by
// key; an array that changed is replaced whole. Whole-array replacement is deliberate for admission
// patches: per-index operations on spec.containers would be wrong if another mutating webhook
// reordered the array before ours was reinvoked, while a replace states the intended result.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace tern {

// "~" -> "~0", "/" -> "~1" (RFC 6901 section 3).
std::string EscapePointerToken(std::string_view token);

// Operations that turn `from` into `to`; empty array when they are equal.
nlohmann::json CreatePatch(const nlohmann::json& from, const nlohmann::json& to);

}  // namespace tern
