#include "proxy/http1_request.h"

namespace tern::proxy {

std::string RawHeaderProblem(std::string_view header) {
  for (size_t i = 0; i < header.size(); ++i) {
    char c = header[i];
    if (c == '\r' && (i + 1 >= header.size() || header[i + 1] != '\n')) return "bare CR in the header";
    if (c == '\n') {
      if (i == 0 || header[i - 1] != '\r') return "bare LF in the header";
      if (i + 1 < header.size() && (header[i + 1] == ' ' || header[i + 1] == '\t')) return "obs-fold (a folded header line)";
    }
  }
  return "";
}

}  // namespace tern::proxy
