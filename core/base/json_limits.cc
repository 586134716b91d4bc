#include "core/base/json_limits.h"

#include <algorithm>

namespace tern {

size_t JsonNestingDepth(std::string_view text) {
  size_t depth = 0, max = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '{' || c == '[') max = std::max(max, ++depth);
    else if ((c == '}' || c == ']') && depth > 0) --depth;
  }
  return max;
}

}  // namespace tern
