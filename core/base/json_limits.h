// A guard to run before parsing JSON from outside: nlohmann's parser and every walk after it
// recurse once per level, so input nested thousands deep would exhaust the stack.
#pragma once

#include <cstddef>
#include <string_view>

namespace tern {

// Kubernetes objects, CNI configurations and results are shallow; 100 levels is generous.
inline constexpr size_t kMaxJsonNestingDepth = 100;

// Deepest nesting of arrays/objects in `text`, scanning once and skipping strings.
size_t JsonNestingDepth(std::string_view text);

}  // namespace tern
