#include "core/base/object_reader.h"

#include <cmath>
#include <cstdio>

namespace tern {

using nlohmann::json;

ObjectReader::ObjectReader(const json& obj, std::string path, FieldErrors& errors)
    : obj_(obj), path_(std::move(path)), errors_(errors) {
  if (!obj_.is_object() && !obj_.is_null()) errors_.Add(path_.empty() ? "<root>" : path_, "must be an object");
}

ObjectReader::~ObjectReader() {
  if (!obj_.is_object() || accept_rest_) return;
  for (auto it = obj_.begin(); it != obj_.end(); ++it) {
    if (!seen_.count(it.key())) errors_.Add(Path(it.key()), "unknown field");
  }
}

const json* ObjectReader::Get(const std::string& key) {
  seen_.insert(key);
  if (!obj_.is_object()) return nullptr;
  auto it = obj_.find(key);
  if (it == obj_.end() || it->is_null()) return nullptr;
  return &*it;
}

void ObjectReader::AcceptRest() { accept_rest_ = true; }

bool ObjectReader::String(const std::string& key, std::string& out) {
  const json* v = Get(key);
  if (!v) return false;
  if (!v->is_string()) {
    errors_.Add(Path(key), "must be a string");
    return false;
  }
  out = v->get<std::string>();
  return true;
}

bool ObjectReader::String(const std::string& key, std::optional<std::string>& out) {
  std::string s;
  if (!String(key, s)) return false;
  out = std::move(s);
  return true;
}

bool ObjectReader::Bool(const std::string& key, bool& out) {
  const json* v = Get(key);
  if (!v) return false;
  if (!v->is_boolean()) {
    errors_.Add(Path(key), "must be true or false");
    return false;
  }
  out = v->get<bool>();
  return true;
}

bool ObjectReader::Int(const std::string& key, int64_t min, int64_t max, int64_t& out) {
  const json* v = Get(key);
  if (!v) return false;
  // Integers written as floats with no fraction (JSON from some tools) are accepted.
  bool integral = v->is_number_integer() || (v->is_number_float() && std::floor(v->get<double>()) == v->get<double>());
  if (!integral) {
    errors_.Add(Path(key), "must be an integer");
    return false;
  }
  double d = v->get<double>();
  if (d < static_cast<double>(min) || d > static_cast<double>(max)) {
    errors_.Add(Path(key), v->dump() + " is out of range [" + std::to_string(min) + ", " + std::to_string(max) + "]");
    return false;
  }
  out = v->is_number_integer() ? v->get<int64_t>() : static_cast<int64_t>(d);
  return true;
}

bool ObjectReader::Number(const std::string& key, double min, double max, double& out) {
  const json* v = Get(key);
  if (!v) return false;
  if (!v->is_number()) {
    errors_.Add(Path(key), "must be a number");
    return false;
  }
  double d = v->get<double>();
  if (!(d >= min && d <= max)) {
    auto num = [](double x) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%g", x);
      return std::string(buf);
    };
    errors_.Add(Path(key), v->dump() + " is out of range [" + num(min) + ", " + num(max) + "]");
    return false;
  }
  out = d;
  return true;
}

bool ObjectReader::StringList(const std::string& key, std::vector<std::string>& out) {
  const json* v = Get(key);
  if (!v) return false;
  if (!v->is_array()) {
    errors_.Add(Path(key), "must be a list of strings");
    return false;
  }
  std::vector<std::string> items;
  bool ok = true;
  for (size_t i = 0; i < v->size(); ++i) {
    if ((*v)[i].is_string()) {
      items.push_back((*v)[i].get<std::string>());
    } else {
      errors_.Add(Path(key) + "[" + std::to_string(i) + "]", "must be a string");
      ok = false;
    }
  }
  if (ok) out = std::move(items);
  return ok;
}

bool ObjectReader::StringMap(const std::string& key, std::map<std::string, std::string>& out) {
  const json* v = Get(key);
  if (!v) return false;
  if (!v->is_object()) {
    errors_.Add(Path(key), "must be a map of strings");
    return false;
  }
  std::map<std::string, std::string> items;
  bool ok = true;
  for (auto it = v->begin(); it != v->end(); ++it) {
    if (it->is_string()) {
      items[it.key()] = it->get<std::string>();
    } else {
      errors_.Add(Path(key) + "." + it.key(), "must be a string");
      ok = false;
    }
  }
  if (ok) out = std::move(items);
  return ok;
}

bool ObjectReader::Array(const std::string& key, const std::function<void(const json&, const std::string&)>& each) {
  const json* v = Get(key);
  if (!v) return false;
  if (!v->is_array()) {
    errors_.Add(Path(key), "must be a list");
    return false;
  }
  for (size_t i = 0; i < v->size(); ++i) each((*v)[i], Path(key) + "[" + std::to_string(i) + "]");
  return true;
}

bool ObjectReader::Enum(const std::string& key, const std::vector<std::string>& allowed, std::string& out) {
  std::string s;
  if (!String(key, s)) return false;
  for (const auto& a : allowed) {
    if (a == s) {
      out = s;
      return true;
    }
  }
  std::string list;
  for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
  errors_.Add(Path(key), "\"" + s + "\" is not one of " + list);
  return false;
}

}  // namespace tern
