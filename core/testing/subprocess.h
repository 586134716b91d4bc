// Runs a program the way a runtime runs a plugin: an exact environment, bytes on stdin, stdout
// and stderr captured, a deadline after which it is killed by its pid. Test-only.
#pragma once

#include <sys/types.h>

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

// Starts a long-running program with stdout and stderr appended to `log_file` and stdin read
// from `stdin_file`; returns its pid (or -1). The caller ends it by pid (Stop) or waits for it
// (WaitExit).
pid_t Spawn(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
            const std::string& log_file, const std::string& stdin_file = "/dev/null");
// Waits up to `deadline` for `pid` to exit; its exit code, or -1 if it did not exit in time.
int WaitExit(pid_t pid, std::chrono::milliseconds deadline);
// SIGTERM, then SIGKILL after `grace`; reaps the process.
void Stop(pid_t pid, std::chrono::milliseconds grace = std::chrono::milliseconds(3000));

}  // namespace tern::testing_support
