#include "proxy/http1_request.h"

namespace tern::proxy {

std::string RawHeaderProblem(std::string_view header) {
  size_t lines = 0;
  for (size_t i = 0; i < header.size(); ++i) {
    char c = header[i];
    if (c == '\r' && (i + 1 >= header.size() || header[i + 1] != '\n')) return "bare CR in the header";
    if (c == '\n') {
      // The request line and its fields; a blank line before the request line counts too (a
      // bound either way).
      if (++lines > kMaxHeaderFields + 1) return kTooManyFields;
      if (i == 0 || header[i - 1] != '\r') return "bare LF in the header";
      if (i + 1 < header.size() && (header[i + 1] == ' ' || header[i + 1] == '\t')) return "obs-fold (a folded header line)";
    }
  }
  return "";
}

}  // namespace tern::proxy
