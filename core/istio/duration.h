// Durations as Istio's resources write them: Go's time.Duration text ("10s", "1.5s", "100ms",
// "1h30m"; units ns, us, µs, ms, s, m, h) and the protobuf JSON form (which is "<seconds>s").
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "core/base/status.h"

namespace tern::istio {

using Duration = std::chrono::nanoseconds;

Result<Duration> ParseDuration(std::string_view text);

}  // namespace tern::istio

namespace tern {
class ObjectReader;
}

namespace tern::istio {

// A duration field of a resource: absent -> nullopt; malformed, or below 1ms (0 allowed only
// when `allow_zero`) -> an error at the field's path and nullopt.
std::optional<Duration> ReadDurationField(ObjectReader& r, const std::string& key, bool allow_zero);

}  // namespace tern::istio
