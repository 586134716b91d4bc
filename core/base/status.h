// Status and Result<T>: failure as part of a function's signature. Success costs one empty
// string; every error carries a message written for the person who has to act on it.
#pragma once

#include <cstdlib>
#include <string>
#include <utility>
#include <variant>

namespace tern {

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status Error(std::string message) { return Status(std::move(message), true); }

  bool ok() const { return !failed_; }
  const std::string& message() const { return message_; }

  // Prefixes the message with where the error happened ("reading mesh.yaml: ...").
  Status Context(const std::string& where) const {
    return ok() ? *this : Error(where + ": " + message_);
  }

 private:
  Status(std::string message, bool failed) : message_(std::move(message)), failed_(failed) {}
  std::string message_;
  bool failed_ = false;
};

// Either a value or the Status that explains why there is none.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}         // NOLINT: implicit by design
  Result(Status error) : v_(std::move(error)) {     // NOLINT: implicit by design
    if (std::get<Status>(v_).ok()) std::abort();    // an OK status is not a result
  }

  bool ok() const { return v_.index() == 0; }
  const T& value() const& { return std::get<T>(v_); }
  T& value() & { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }
  Status status() const { return ok() ? Status::Ok() : std::get<Status>(v_); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace tern
