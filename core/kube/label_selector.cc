#include "core/kube/label_selector.h"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace tern {

bool LabelSelector::Matches(const Labels& labels) const {
  for (const auto& [k, v] : match_labels) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  for (const auto& req : match_expressions) {
    auto it = labels.find(req.key);
    bool has = it != labels.end();
    bool in = has && std::find(req.values.begin(), req.values.end(), it->second) != req.values.end();
    switch (req.op) {
      case LabelRequirement::Op::kIn: if (!in) return false; break;
      case LabelRequirement::Op::kNotIn: if (in) return false; break;
      case LabelRequirement::Op::kExists: if (!has) return false; break;
      case LabelRequirement::Op::kDoesNotExist: if (has) return false; break;
    }
  }
  return true;
}

Labels ParseStringMap(const nlohmann::json& value, const std::string& path, FieldErrors& errors) {
  Labels out;
  if (value.is_null()) return out;
  if (!value.is_object()) {
    errors.Add(path, "must be a map of strings");
    return out;
  }
  for (auto it = value.begin(); it != value.end(); ++it) {
    if (!it.value().is_string()) {
      errors.Add(path + "." + it.key(), "must be a string, got " + std::string(it.value().type_name()));
      continue;
    }
    out[it.key()] = it.value().get<std::string>();
  }
  return out;
}

LabelSelector ParseLabelSelector(const nlohmann::json& value, const std::string& path, FieldErrors& errors) {
  LabelSelector sel;
  if (value.is_null()) return sel;
  if (!value.is_object()) {
    errors.Add(path, "must be a label selector object");
    return sel;
  }
  for (auto it = value.begin(); it != value.end(); ++it) {
    if (it.key() != "matchLabels" && it.key() != "matchExpressions") {
      errors.Add(path + "." + it.key(), "unknown field");
    }
  }
  if (value.contains("matchLabels")) sel.match_labels = ParseStringMap(value["matchLabels"], path + ".matchLabels", errors);
  if (!value.contains("matchExpressions")) return sel;
  const auto& exprs = value["matchExpressions"];
  if (!exprs.is_array()) {
    errors.Add(path + ".matchExpressions", "must be a list");
    return sel;
  }
  for (size_t i = 0; i < exprs.size(); ++i) {
    std::string p = path + ".matchExpressions[" + std::to_string(i) + "]";
    const auto& e = exprs[i];
    if (!e.is_object() || !e.contains("key") || !e["key"].is_string() || !e.contains("operator") ||
        !e["operator"].is_string()) {
      errors.Add(p, "needs string fields key and operator");
      continue;
    }
    LabelRequirement req;
    req.key = e["key"].get<std::string>();
    std::string op = e["operator"].get<std::string>();
    if (op == "In") req.op = LabelRequirement::Op::kIn;
    else if (op == "NotIn") req.op = LabelRequirement::Op::kNotIn;
    else if (op == "Exists") req.op = LabelRequirement::Op::kExists;
    else if (op == "DoesNotExist") req.op = LabelRequirement::Op::kDoesNotExist;
    else {
      errors.Add(p + ".operator", "\"" + op + "\" is not one of In, NotIn, Exists, DoesNotExist");
      continue;
    }
    if (e.contains("values")) {
      if (!e["values"].is_array()) {
        errors.Add(p + ".values", "must be a list of strings");
        continue;
      }
      for (const auto& v : e["values"]) {
        if (v.is_string()) req.values.push_back(v.get<std::string>());
        else errors.Add(p + ".values", "must be a list of strings");
      }
    }
    bool needs_values = req.op == LabelRequirement::Op::kIn || req.op == LabelRequirement::Op::kNotIn;
    if (needs_values && req.values.empty()) errors.Add(p + ".values", "must not be empty for " + op);
    if (!needs_values && !req.values.empty()) errors.Add(p + ".values", "must be empty for " + op);
    sel.match_expressions.push_back(std::move(req));
  }
  return sel;
}

}  // namespace tern
