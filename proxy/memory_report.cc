#include "proxy/memory_report.h"

#include <malloc.h>

#include <fstream>
#include <string>

namespace tern::proxy {

namespace {

// A "VmRSS:   1234 kB" line of /proc/self/status, in bytes; 0 when absent.
uint64_t StatusBytes(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stoull(line.substr(field.size() + 1)) * 1024;
  }
  return 0;
}

}  // namespace

nlohmann::json MemoryReport() {
  const struct mallinfo2 m = mallinfo2();
  return {
      {"allocated", m.uordblks + m.hblkhd},  // live: in use from the arenas, and mmapped chunks
      {"heap_size", m.arena + m.hblkhd},     // taken from the system by malloc
      {"heap_free", m.fordblks},             // free in the arenas, not given back
      {"heap_free_chunks", m.ordblks},
      {"heap_releasable", m.keepcost},  // free at the top of the main arena
      {"mmapped", m.hblkhd},
      {"rss", StatusBytes("VmRSS")},
      {"rss_peak", StatusBytes("VmHWM")},
  };
}

}  // namespace tern::proxy
