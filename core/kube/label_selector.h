// Kubernetes label selectors (matchLabels + matchExpressions) with the API's semantics:
// all terms must hold; an empty selector matches everything.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/base/field_errors.h"

namespace tern {

using Labels = std::map<std::string, std::string>;

struct LabelRequirement {
  enum class Op { kIn, kNotIn, kExists, kDoesNotExist };
  std::string key;
  Op op = Op::kExists;
  std::vector<std::string> values;
};

struct LabelSelector {
  Labels match_labels;
  std::vector<LabelRequirement> match_expressions;
  bool Matches(const Labels& labels) const;
};

// Parses {matchLabels: {...}, matchExpressions: [...]}; errors are added under `path`.
LabelSelector ParseLabelSelector(const nlohmann::json& value, const std::string& path, FieldErrors& errors);

// A JSON object of string values (metadata.labels / annotations); non-strings are errors.
Labels ParseStringMap(const nlohmann::json& value, const std::string& path, FieldErrors& errors);

}  // namespace tern
