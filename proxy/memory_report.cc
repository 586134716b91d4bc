#include "proxy/memory_report.h"

#include <malloc.h>

#include "core/base/proc_status.h"

namespace tern::proxy {

nlohmann::json MemoryReport() {
  const struct mallinfo2 m = mallinfo2();
  return {
#ifdef __SANITIZE_ADDRESS__
      {"allocator", "asan"},  // its own allocator: glibc's arenas, which mallinfo2 reads, are unused (zeros)
#else
      {"allocator", "glibc"},
#endif
      {"allocated", m.uordblks + m.hblkhd},  // live: in use from the arenas, and mmapped chunks
      {"heap_size", m.arena + m.hblkhd},     // taken from the system by malloc
      {"heap_free", m.fordblks},             // free in the arenas, not given back
      {"heap_free_chunks", m.ordblks},
      {"heap_releasable", m.keepcost},  // free at the top of the main arena
      {"mmapped", m.hblkhd},
      {"rss", ProcStatusKb("VmRSS") * 1024},
      {"rss_peak", ProcStatusKb("VmHWM") * 1024},
  };
}

}  // namespace tern::proxy
