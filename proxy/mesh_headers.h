// Headers that steer the mesh. A request from outside the pod (the inbound listener) must not
// choose its own retries or timeouts (x-envoy-retry-on, x-envoy-upstream-rq-timeout-ms, ...) or
// claim a client certificate (x-forwarded-client-cert): those are stripped before the app sees
// them. The app itself (outbound) may set the x-envoy-* overrides, as in Istio, but never XFCC:
// only the proxy that terminated mTLS can say who the client is.
#pragma once

#include <string_view>

namespace tern::proxy {

// Case-insensitive.
bool IsSteeringHeader(std::string_view name);  // x-envoy-*, x-tern-*, x-forwarded-client-cert
bool IsClientCertHeader(std::string_view name);  // x-forwarded-client-cert

}  // namespace tern::proxy
