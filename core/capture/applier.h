// The seam between capture plans and the kernel: three methods, one real implementation
// (libnftables + libnl inside a network namespace) and a recording double for tests.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/base/status.h"
#include "core/capture/plan.h"

namespace tern::capture {

class Applier {
 public:
  virtual ~Applier() = default;
  // Replaces the ruleset's table (and, for TPROXY, installs its policy routing) atomically:
  // on failure nothing of this call is left behind and an earlier table is untouched.
  virtual Status Apply(const Ruleset& ruleset) = 0;
  // Removes the table and the TPROXY routing; succeeds when they are already gone.
  virtual Status Remove(const Ruleset& ruleset) = 0;
  // The table as the kernel has it now (nft's listing), or "" when there is none.
  virtual Result<std::string> List(const std::string& table) = 0;
  // Succeeds when the kernel holds exactly what Apply(ruleset) installs; otherwise the error
  // names the first difference (a missing table, an altered or missing rule, missing routing).
  virtual Status Verify(const Ruleset& ruleset) = 0;
  // Exercises everything Apply uses, changing nothing, so that an Apply soon after is fast: a
  // short-lived process (tern-cni) runs it while it waits for the API. Safe to skip.
  virtual void Prewarm() {}
};

// Applies in the network namespace at `netns_path` ("" = the current one).
std::unique_ptr<Applier> MakeKernelApplier(std::string netns_path);

// Records what would be applied; List returns the last applied table's rendering.
class RecordingApplier : public Applier {
 public:
  Status Apply(const Ruleset& ruleset) override;
  Status Remove(const Ruleset& ruleset) override;
  Result<std::string> List(const std::string& table) override;
  Status Verify(const Ruleset& ruleset) override;
  std::vector<std::string> calls;  // "apply <table>" / "remove <table>"
  std::string current;             // rendered table, "" when removed
};

}  // namespace tern::capture
