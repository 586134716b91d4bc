// tern-cni: the chained CNI plugin that programs a meshed pod's traffic capture from the node,
// so pods need no NET_ADMIN. The runtime runs it once per command; see plugin.h.
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <string>

#include "cni-plugin/cni_error.h"
#include "cni-plugin/plugin.h"

namespace {

// The configuration is a few KiB; a prevResult with many interfaces a few more. Anything past
// this is not a network configuration.
constexpr size_t kMaxStdin = 4 << 20;

}  // namespace

int main() {
  std::string input;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      std::cout << tern::cni::Error{tern::cni::kIoFailure, "cannot read the network configuration from stdin", ""}
                       .ToJson("1.1.0")
                       .dump()
                << "\n";
      return 1;
    }
    input.append(buf, static_cast<size_t>(n));
    if (input.size() > kMaxStdin) {
      std::cout << tern::cni::Error{tern::cni::kIoFailure, "network configuration on stdin exceeds 4 MiB", ""}
                       .ToJson("1.1.0")
                       .dump()
                << "\n";
      return 1;
    }
  }
  tern::cni::PluginOutput out = tern::cni::RunPlugin(
      [](const std::string& name) -> std::optional<std::string> {
        const char* v = std::getenv(name.c_str());
        return v ? std::optional<std::string>(v) : std::nullopt;
      },
      input);
  std::cout << out.stdout_text << std::flush;
  if (!out.log.empty()) std::cerr << out.log << "\n";
  return out.exit_code;
}
