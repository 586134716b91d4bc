// Strict reading of a JSON object that came from a user (mesh config, Istio resources, config
// snapshots): one call per known field, each type-checked; a field of the wrong type and a field
// nobody asked for are errors with their path ("spec.http[0].route[1].weight: must be an
// integer"). Errors accumulate, so one pass reports every problem.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/base/field_errors.h"

namespace tern {

class ObjectReader {
 public:
  // `path` is the object's own path ("" for a document's root). A value that is not an object
  // (null counts as empty) is an error.
  ObjectReader(const nlohmann::json& obj, std::string path, FieldErrors& errors);
  // Reports the fields that no call asked for.
  ~ObjectReader();
  ObjectReader(const ObjectReader&) = delete;
  ObjectReader& operator=(const ObjectReader&) = delete;

  std::string Path(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }
  FieldErrors& errors() { return errors_; }
  // Marks `key` as known; nullptr when absent or null.
  const nlohmann::json* Get(const std::string& key);
  // Marks every remaining field as known (for objects kept whole, e.g. metadata).
  void AcceptRest();

  // Each returns whether the field was present and valid; the output is untouched otherwise.
  bool String(const std::string& key, std::string& out);
  bool String(const std::string& key, std::optional<std::string>& out);
  bool Bool(const std::string& key, bool& out);
  bool Int(const std::string& key, int64_t min, int64_t max, int64_t& out);
  bool Number(const std::string& key, double min, double max, double& out);
  bool StringList(const std::string& key, std::vector<std::string>& out);
  bool StringMap(const std::string& key, std::map<std::string, std::string>& out);
  // Calls `each` with the element and its path for every element of an array field.
  bool Array(const std::string& key, const std::function<void(const nlohmann::json&, const std::string&)>& each);
  // One of `allowed` (its error lists them).
  bool Enum(const std::string& key, const std::vector<std::string>& allowed, std::string& out);

 private:
  const nlohmann::json& obj_;
  std::string path_;
  FieldErrors& errors_;
  std::set<std::string> seen_;
  bool accept_rest_ = false;
};

}  // namespace tern
