#include "proxy/outlier_detection.h"

#include <algorithm>

namespace tern::proxy {

namespace {

int64_t Ns(std::chrono::milliseconds ms) { return std::chrono::duration_cast<std::chrono::nanoseconds>(ms).count(); }

bool Eject(const Cluster& c, const UpstreamEndpoint& endpoint, int64_t now_ns) {
  const OutlierSettings& o = c.outlier;
  EndpointState& e = *endpoint.state;
  std::lock_guard<std::mutex> lock(c.state->mu);
  if (e.ejected_until_ns.load(std::memory_order_relaxed) > now_ns) return false;  // already out
  int64_t ejected = 0;
  for (const auto& other : c.endpoints) ejected += other.state->ejected_until_ns.load(std::memory_order_relaxed) > now_ns;
  if (ejected * 100 >= o.max_ejection_percent * static_cast<int64_t>(c.endpoints.size())) return false;
  // Healthy intervals since the last ejection ended lower the multiplier.
  if (e.ejections > 0 && o.interval.count() > 0) {
    int64_t healthy = std::max<int64_t>(0, now_ns - e.ejected_until_ns.load(std::memory_order_relaxed)) / Ns(o.interval);
    e.ejections = std::max<int64_t>(0, e.ejections - healthy);
  }
  ++e.ejections;
  ++e.times_ejected;
  int64_t duration = std::min(Ns(o.base_ejection) * e.ejections, std::max(Ns(o.base_ejection), Ns(o.max_ejection)));
  int64_t until = now_ns + duration;
  e.ejected_until_ns.store(until, std::memory_order_relaxed);
  e.consecutive_5xx.store(0, std::memory_order_relaxed);
  e.consecutive_gateway.store(0, std::memory_order_relaxed);
  if (c.state->ejected_until_max_ns.load(std::memory_order_relaxed) < until) {
    c.state->ejected_until_max_ns.store(until, std::memory_order_relaxed);
  }
  return true;
}

}  // namespace

bool RecordOutcome(const Cluster& c, const UpstreamEndpoint& endpoint, unsigned status, int64_t now_ns) {
  if (!c.outlier.enabled) return false;
  EndpointState& e = *endpoint.state;
  bool error = status >= 500;
  bool gateway = status == 502 || status == 503 || status == 504;
  if (!error) {
    // A success ends both runs; read first so healthy traffic does not write the shared line.
    if (e.consecutive_5xx.load(std::memory_order_relaxed)) e.consecutive_5xx.store(0, std::memory_order_relaxed);
    if (e.consecutive_gateway.load(std::memory_order_relaxed)) e.consecutive_gateway.store(0, std::memory_order_relaxed);
    return false;
  }
  int64_t run5xx = e.consecutive_5xx.fetch_add(1, std::memory_order_relaxed) + 1;
  int64_t run_gateway = 0;
  if (gateway) run_gateway = e.consecutive_gateway.fetch_add(1, std::memory_order_relaxed) + 1;
  else e.consecutive_gateway.store(0, std::memory_order_relaxed);
  bool trip = (c.outlier.consecutive_5xx > 0 && run5xx >= c.outlier.consecutive_5xx) ||
              (c.outlier.consecutive_gateway > 0 && run_gateway >= c.outlier.consecutive_gateway);
  return trip && Eject(c, endpoint, now_ns);
}

}  // namespace tern::proxy
