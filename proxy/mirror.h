// Traffic mirroring (VirtualService `mirror` + `mirrorPercentage`): a copy of the request goes to
// the mirror cluster, its authority suffixed "-shadow" as Envoy does, and its answer is read and
// dropped. Fire and forget: the client's request never waits for the mirror, and a worker keeps
// at most kMaxMirrorsInFlight copies in flight (more are dropped and counted).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstddef>
#include <string>

namespace tern::proxy {

inline constexpr size_t kMaxMirroredBody = 64 * 1024;  // bigger bodies are not mirrored
inline constexpr int kMaxMirrorsInFlight = 64;

// `request`: the whole HTTP/1.1 request to send. False when dropped (too many in flight).
bool SendMirror(const boost::asio::any_io_executor& ex, const boost::asio::ip::tcp::endpoint& to, std::string request,
                std::chrono::milliseconds timeout);

}  // namespace tern::proxy
