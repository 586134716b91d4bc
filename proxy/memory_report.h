// The admin port's GET /memory: what the heap holds (glibc's mallinfo2, over every arena) next to
// what the process holds (RSS), in the spirit of Envoy's /memory. Tells live objects (allocated)
// from memory glibc keeps free but has not given back (heap_free): the difference between a leak
// and fragmentation.
#pragma once

#include <nlohmann/json.hpp>

namespace tern::proxy {

nlohmann::json MemoryReport();

}  // namespace tern::proxy
