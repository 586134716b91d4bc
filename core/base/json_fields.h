// Reading fields of JSON that came from outside. nlohmann's `value(key, default)` throws when
// the key exists with another type; these return the fallback instead, so a field of the wrong
// type is treated like a missing one (validation reports it where it matters).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace tern {

inline std::string StringField(const nlohmann::json& obj, const char* key, const std::string& fallback = "") {
  if (!obj.is_object()) return fallback;
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : fallback;
}

inline bool BoolField(const nlohmann::json& obj, const char* key, bool fallback) {
  if (!obj.is_object()) return fallback;
  auto it = obj.find(key);
  return it != obj.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

}  // namespace tern
