// tern-init: the injected init container's entrypoint. Flags (or env) -> capture plan -> one
// nftables transaction in this network namespace. Exit 0 on success; otherwise 1 (or 2 for a
// usage error) with a one-line reason on stderr.
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <iostream>

#include "core/capture/applier.h"
#include "core/capture/nft_render.h"
#include "core/capture/plan.h"
#include "init/flags.h"
#include "init/validation.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  auto options = tern::init::ParseInitFlags(args, [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    return v ? std::optional<std::string>(v) : std::nullopt;
  });
  if (!options.ok()) {
    std::cerr << "tern-init: " << options.status().message() << "\n";
    return 2;
  }
  if (options->help) {
    std::cout << tern::init::kInitUsage;
    return 0;
  }
  if (options->run_validation) {
    if (geteuid() == options->config.proxy_uid) {
      std::cerr << "tern-init: --run-validation must run as a uid other than the proxy's ("
                << options->config.proxy_uid << "): its traffic is never captured\n";
      return 2;
    }
    tern::Status s = tern::init::ValidateCapture(options->config,
                                                 std::chrono::milliseconds(options->validation_timeout_ms));
    if (!s.ok()) {
      std::cerr << "tern-init: " << s.message() << "\n";
      return 1;
    }
    std::cerr << "tern-init: traffic capture validated\n";
    return 0;
  }
  tern::capture::Ruleset plan = tern::capture::BuildPlan(options->config);
  if (options->dry_run) {
    std::cout << tern::capture::RenderTable(plan);
    if (plan.tproxy_routing) {
      std::cout << "# policy routing: fwmark " << plan.mark << " lookup " << plan.route_table
                << "; table " << plan.route_table << ": local default dev lo\n";
    }
    return 0;
  }
  auto applier = tern::capture::MakeKernelApplier("");
  if (options->cleanup) {
    // Cleanup removes whatever this plan would install, TPROXY routing included.
    tern::Status s = applier->Remove(plan);
    if (!s.ok()) {
      std::cerr << "tern-init: cleanup failed: " << s.message() << "\n";
      return 1;
    }
    std::cerr << "tern-init: removed table inet " << plan.table << "\n";
    return 0;
  }
  tern::Status s = applier->Apply(plan);
  if (!s.ok()) {
    std::cerr << "tern-init: capture not installed: " << s.message() << "\n";
    return 1;
  }
  std::cerr << "tern-init: capture installed (table inet " << plan.table << ", "
            << tern::InterceptionModeName(options->config.mode) << ")\n";
  return 0;
}
