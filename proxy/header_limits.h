// How big a request's (or an answer's) header may be, the same for HTTP/1.1 and HTTP/2: past
// either bound a request gets 431, an upstream's answer is refused.
#pragma once

#include <cstddef>

namespace tern::proxy {

inline constexpr size_t kMaxHeaderBytes = 64 * 1024;  // HTTP/2 counts HPACK's way: name + value + 32
inline constexpr size_t kMaxHeaderFields = 100;

}  // namespace tern::proxy
