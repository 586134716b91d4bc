// Runs a program the way a runtime runs a plugin: an exact environment, bytes on stdin, stdout
// and stderr captured, a deadline after which it is killed by its pid. Test-only.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace tern::testing_support {

struct ProcessResult {
  int exit_code = -1;  // -1 when killed or not started
  std::string out, err;
  bool timed_out = false;
  std::chrono::microseconds wall{0};
};

ProcessResult RunProcess(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                         const std::string& stdin_bytes,
                         std::chrono::milliseconds deadline = std::chrono::milliseconds(30000));

}  // namespace tern::testing_support
