// Renders a capture Ruleset as the libnftables JSON a kernel applier feeds to nft. The text
// form (nft_render.h) stays the human-facing one (goldens, --dry-run); the kernel gets JSON
// because nft's text parser resolves every uid and gid through NSS (getpwnam on "1337"), which
// on a node can mean reading /etc/passwd, loading NSS modules or asking LDAP, per rule, on the
// pod-creation path. In JSON a number is a number.
#pragma once

#include <string>

#include "core/capture/plan.h"

namespace tern::capture {

// The same transaction as RenderReplaceTransaction, as {"nftables": [...]}.
std::string RenderReplaceTransactionJson(const Ruleset& ruleset);

}  // namespace tern::capture
