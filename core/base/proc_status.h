// A field of /proc/<pid>/status in kB ("VmRSS", "VmHWM"), for the proxy's /memory and the
// benchmarks; 0 when the process or the field is absent.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

namespace tern {

inline uint64_t ProcStatusKb(const std::string& field, pid_t pid = 0) {
  std::ifstream status(pid ? "/proc/" + std::to_string(pid) + "/status" : std::string("/proc/self/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::strtoull(line.c_str() + field.size() + 1, nullptr, 10);
  }
  return 0;
}

}  // namespace tern
