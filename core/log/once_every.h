// A warning that repeats (a listener out of descriptors fails every accept, a socket option the
// kernel refuses on every connection) logged at most once a period, with how many were left out
// since the last time. Not thread-safe: one per thread or per owner.
#pragma once

#include <chrono>
#include <cstdint>
#include <utility>

namespace tern {

class OnceEvery {
 public:
  explicit OnceEvery(std::chrono::steady_clock::duration period = std::chrono::minutes(1)) : period_(period) {}
  // True when this occurrence is to be logged.
  bool Due() {
    const auto now = std::chrono::steady_clock::now();
    if (now < next_) {
      ++suppressed_;
      return false;
    }
    next_ = now + period_;
    last_suppressed_ = std::exchange(suppressed_, 0);
    return true;
  }
  // How many occurrences went unlogged before the one Due just let through.
  uint64_t suppressed() const { return last_suppressed_; }

 private:
  std::chrono::steady_clock::duration period_;
  std::chrono::steady_clock::time_point next_{};
  uint64_t suppressed_ = 0, last_suppressed_ = 0;
};

}  // namespace tern
