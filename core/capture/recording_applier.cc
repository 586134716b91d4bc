#include "core/capture/applier.h"
#include "core/capture/nft_render.h"

namespace tern::capture {

Status RecordingApplier::Apply(const Ruleset& rs) {
  calls.push_back("apply " + rs.table);
  current = RenderTable(rs);
  return Status::Ok();
}

Status RecordingApplier::Remove(const Ruleset& rs) {
  calls.push_back("remove " + rs.table);
  current.clear();
  return Status::Ok();
}

Result<std::string> RecordingApplier::List(const std::string&) { return current; }

Status RecordingApplier::Verify(const Ruleset& rs) {
  if (current.empty()) return Status::Error("table inet " + rs.table + " is missing");
  if (current != RenderTable(rs)) return Status::Error("table inet " + rs.table + " differs from the plan");
  return Status::Ok();
}

}  // namespace tern::capture
