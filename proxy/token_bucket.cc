#include "proxy/token_bucket.h"

#include <algorithm>

namespace tern::proxy {

TokenBucket::TokenBucket(double per_second, double burst)
    : rate_(per_second), burst_(burst), tokens_(burst), last_(std::chrono::steady_clock::now()) {}

bool TokenBucket::TryTake() {
  std::lock_guard<std::mutex> lock(mu_);
  auto now = std::chrono::steady_clock::now();
  tokens_ = std::min(burst_, tokens_ + std::chrono::duration<double>(now - last_).count() * rate_);
  last_ = now;
  if (tokens_ < 1) return false;
  tokens_ -= 1;
  return true;
}

}  // namespace tern::proxy
