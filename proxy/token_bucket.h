// The local rate limit (tern.dev/rate-limit): a token bucket shared by the workers, refilled at
// `per_second` up to `burst`. A mutex is enough: it is taken once per inbound request, and only
// when a limit is set.
#pragma once

#include <chrono>
#include <mutex>

namespace tern::proxy {

class TokenBucket {
 public:
  TokenBucket(double per_second, double burst);
  // Takes one token if there is one.
  bool TryTake();

 private:
  std::mutex mu_;
  const double rate_, burst_;
  double tokens_;
  std::chrono::steady_clock::time_point last_;
};

}  // namespace tern::proxy
