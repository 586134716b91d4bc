// Kubernetes resource quantities ("100m", "128Mi", "1.5", "2e3"), validated as the API server
// does so that an annotation that would make the API server refuse the pod is caught first.
#pragma once

#include <string_view>

#include "core/base/status.h"

namespace tern {

// The quantity's value in base units (cores, bytes), or an error naming what is wrong.
Result<double> ParseQuantity(std::string_view text);

}  // namespace tern
