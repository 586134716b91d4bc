// Bytes from one socket to another, untouched, until the first ends; then the other is
// half-closed, so a FIN travels on as a FIN. Two of them, joined, relay a TCP connection (or an
// upgraded HTTP/1.1 one) both ways.
#pragma once

#include <cstdint>

#include "proxy/asio_types.h"

namespace tern::proxy {

// Copies `from` to `to` until EOF or an error; counts what was written in `bytes`.
Awaitable<void> Pipe(Socket& from, Socket& to, uint64_t& bytes);

}  // namespace tern::proxy
