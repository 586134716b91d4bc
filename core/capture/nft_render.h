// Renders a capture Ruleset as nftables text: the table alone (for golden tests, `--dry-run`
// and CHECK), and the transaction that replaces any earlier version of the table atomically.
#pragma once

#include <string>

#include "core/capture/plan.h"

namespace tern::capture {

// `table inet tern { ... }`.
std::string RenderTable(const Ruleset& ruleset);

// One nft transaction: make sure the table exists, delete it, define it anew. Applied by
// libnftables as a single batch, so the kernel sees the old ruleset or the new one, never a mix;
// applying it twice replaces, never duplicates.
std::string RenderReplaceTransaction(const Ruleset& ruleset);

// Removes the table (and only it); succeeds when it is already gone.
std::string RenderDeleteTransaction(const std::string& table);

}  // namespace tern::capture
