// The istio_tcp_* series a worker's connections count into, resolved once per destination and
// kept by that worker: a connection then increments plain atomics with no lock. (Family::With
// builds a label vector and takes the family's mutex, which every worker shares: one such call
// per accepted connection set the workers against each other.)
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>

#include "core/metrics/registry.h"

namespace tern::proxy {

struct TcpFamilies {
  Family<Counter>& opened;    // {reporter, destination_service}
  Family<Counter>& closed;    // {reporter, destination_service, response_flags}
  Family<Counter>& sent;      // {reporter, destination_service}
  Family<Counter>& received;  // {reporter, destination_service}
};

// One worker's; used by its thread only.
class TcpSeriesCache {
 public:
  struct Series {
    Counter* opened;
    Counter* closed_clean;  // response_flags "-"
    Counter* sent;
    Counter* received;
  };

  explicit TcpSeriesCache(TcpFamilies families) : families_(families) {}

  // The series of connections to `service` (reporter "destination" inbound, else "source").
  Series For(bool inbound, std::string_view service) {
    auto& cache = by_service_[inbound ? 1 : 0];
    if (auto it = cache.find(service); it != cache.end()) return it->second;
    const std::string reporter = inbound ? "destination" : "source", name(service);
    Series s{&families_.opened.With({reporter, name}), &families_.closed.With({reporter, name, "-"}),
             &families_.sent.With({reporter, name}), &families_.received.With({reporter, name})};
    // Bounded: past the cap a destination is resolved per connection (the registry's own series
    // stay, as Prometheus needs them).
    if (cache.size() < kMaxEntries) cache.emplace(name, s);
    return s;
  }
  // A connection that ended with `flags`: "-" from the cache, any other (failures) resolved now.
  Counter& Closed(bool inbound, std::string_view service, const std::string& flags) {
    if (flags == "-") return *For(inbound, service).closed_clean;
    return families_.closed.With({inbound ? "destination" : "source", std::string(service), flags});
  }

 private:
  static constexpr size_t kMaxEntries = 4096;
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  TcpFamilies families_;
  std::unordered_map<std::string, Series, Hash, std::equal_to<>> by_service_[2];
};

}  // namespace tern::proxy
