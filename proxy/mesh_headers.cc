#include "proxy/mesh_headers.h"

#include "core/base/ascii.h"

namespace tern::proxy {

namespace {

bool IStartsWith(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (AsciiLower(s[i]) != prefix[i]) return false;
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
