// Running code inside another network namespace. setns(2) changes the calling thread only, so
// the work runs on a short-lived thread that enters the namespace and exits with it; the
// caller's own thread never changes namespace.
#pragma once

#include <functional>
#include <string>

#include "core/base/status.h"

namespace tern::capture {

// Runs `work` in the network namespace at `netns_path` (e.g. /var/run/netns/x or
// /proc/<pid>/ns/net); an empty path runs it in the current one. Fails if the namespace cannot
// be opened or entered.
Status RunInNetns(const std::string& netns_path, const std::function<Status()>& work);

// Runs `work` in a new, empty network namespace that disappears when it returns: a scratch
// kernel in which to see how a ruleset reads back once the kernel has parsed it.
Status RunInScratchNetns(const std::function<Status()>& work);

}  // namespace tern::capture
