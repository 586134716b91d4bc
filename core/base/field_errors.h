// Collects validation errors, each tied to the field path it concerns, so a user sees every
// problem of an input at once ("spec.containers[0].ports[1].containerPort: 70000 is out of range").
#pragma once

#include <string>
#include <vector>

#include "core/base/status.h"

namespace tern {

struct FieldError {
  std::string path;
  std::string message;
};

class FieldErrors {
 public:
  void Add(std::string path, std::string message) {
    errors_.push_back({std::move(path), std::move(message)});
  }
  void Append(const FieldErrors& other) {
    errors_.insert(errors_.end(), other.errors_.begin(), other.errors_.end());
  }
  bool empty() const { return errors_.empty(); }
  const std::vector<FieldError>& all() const { return errors_; }

  // "a.b: msg; c: msg2"
  std::string ToString() const {
    std::string out;
    for (const auto& e : errors_) {
      if (!out.empty()) out += "; ";
      out += e.path.empty() ? e.message : e.path + ": " + e.message;
    }
    return out;
  }
  Status ToStatus() const { return empty() ? Status::Ok() : Status::Error(ToString()); }

 private:
  std::vector<FieldError> errors_;
};

}  // namespace tern
