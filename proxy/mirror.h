// Traffic mirroring (VirtualService `mirror` + `mirrorPercentage`): a copy of the request goes to
// the mirror cluster, its authority suffixed "-shadow" as Envoy does, and its answer is read and
// dropped. Fire and forget: the client's request never waits for the mirror, and a worker keeps
// at most kMaxMirrorsInFlight copies in flight (more are dropped).
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proxy/asio_types.h"

namespace tern::proxy {

inline constexpr size_t kMaxMirroredBody = 64 * 1024;  // bigger bodies are not mirrored
inline constexpr int kMaxMirrorsInFlight = 64;

struct Cluster;

// The HTTP/1.1 request a mirror gets, whichever version the client spoke: the authority suffixed
// "-shadow" (before its port), the fields given minus pseudo-headers and framing or connection
// fields, the body framed by its length, and "connection: close".
std::string ShadowRequest(std::string_view method, std::string_view target, std::string_view authority,
                          const std::vector<std::pair<std::string_view, std::string_view>>& fields, std::string_view body);

// Sends `request` to one of `mirror`'s endpoints (picked by `random`). False when dropped (too
// many in flight, or no endpoint).
bool SendMirror(const Executor& ex, const Cluster& mirror, uint64_t random, std::string request,
                std::chrono::milliseconds timeout);

}  // namespace tern::proxy
