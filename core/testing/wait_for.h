// Polls `done` every 10 ms until it holds or `budget` is spent (tests only: a bounded wait for
// what another thread or process does).
#pragma once

#include <chrono>
#include <functional>
#include <thread>

namespace tern::testing_support {

inline bool WaitFor(const std::function<bool()>& done, std::chrono::milliseconds budget = std::chrono::milliseconds(5000)) {
  const auto until = std::chrono::steady_clock::now() + budget;
  while (std::chrono::steady_clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

}  // namespace tern::testing_support
