// Bytes from one socket to another, untouched, until the first ends; then the other is
// half-closed, so a FIN travels on as a FIN. Two of them, joined, relay a TCP connection (or an
// upgraded HTTP/1.1 one) both ways.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>

#include "proxy/asio_types.h"

namespace tern::proxy {

// Copies `from` to `to` until EOF or an error; counts what was written in `bytes`.
Awaitable<void> Pipe(Socket& from, Socket& to, uint64_t& bytes);

// Once `progress()` (the bytes a tunnel moved, both ways) has not changed for `idle`, calls
// `end_tunnel` (which closes the tunnel's sockets) and returns: the other side of an `||` with a
// tunnel, cancelled when the tunnel ends first. Looks a few times per idle period.
Awaitable<void> IdleWatch(std::function<uint64_t()> progress, std::chrono::milliseconds idle,
                          std::function<void()> end_tunnel);

}  // namespace tern::proxy
