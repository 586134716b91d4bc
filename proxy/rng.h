// The proxy's random draws (weighted clusters, fault percentages, mirror shares, the balancers'
// two choices, backoff jitter): splitmix64, one 64-bit word of state, cheap enough to own one
// per connection. std::minstd_rand is not used: its successive outputs are correlated, so two
// draws made one after the other (a fault's delay, then its abort) were not independent.
#pragma once

#include <cstdint>
#include <limits>

namespace tern::proxy {

class Rng {
 public:
  using result_type = uint64_t;
  explicit Rng(uint64_t seed) : state_(seed) {}
  static constexpr result_type min() { return 0; }
  static constexpr result_type max() { return std::numeric_limits<result_type>::max(); }
  result_type operator()() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

 private:
  uint64_t state_;
};

}  // namespace tern::proxy
