#include "proxy/mesh_headers.h"

#include "core/base/ascii.h"

namespace tern::proxy {

namespace {

// Case-insensitive, and '_' taken for '-': an app (or a framework: CGI, WSGI, PHP) that folds
// the two would read x_envoy_retry_on as x-envoy-retry-on, so both forms are the mesh's.
bool IStartsWith(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    const char c = s[i] == '_' ? '-' : AsciiLower(s[i]);
    if (c != prefix[i]) return false;
  }
  return true;
}

}  // namespace

bool IsClientCertHeader(std::string_view name) {
  return name.size() == 23 && IStartsWith(name, "x-forwarded-client-cert");
}

bool IsSteeringHeader(std::string_view name) {
  return IStartsWith(name, "x-envoy-") || IStartsWith(name, "x-tern-") || IsClientCertHeader(name);
}

}  // namespace tern::proxy
