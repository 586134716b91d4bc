// The destination a REDIRECTed connection was addressed to (SO_ORIGINAL_DST from conntrack).
// Kept apart from the Asio code: the netfilter headers and Asio's socket headers collide.
#pragma once

#include <sys/socket.h>

namespace tern::proxy {

// For an accepted socket `fd`; false when the connection was not redirected.
bool OriginalDestination(int fd, bool ipv6, sockaddr_storage* out);

}  // namespace tern::proxy
