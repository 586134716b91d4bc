// The app's own health checks, run by the sidecar on the kubelet's behalf. The injector rewrote
// every httpGet, tcpSocket and grpc probe (and lifecycle hook) of the app's containers to
// `GET :15020/app-health/<container>/livez|readyz|startupz` (`/app-lifecycle/.../poststartz|
// prestopz`) and kept the originals in ISTIO_KUBE_APP_PROBERS; the kubelet's request lands here
// and the original check runs against the app, from the proxy's uid (never captured), as the
// kubelet would have run it:
//   httpGet    GET path (default "/") on the port, scheme HTTP or HTTPS (the certificate is not
//              verified, as the kubelet does not), the probe's headers; the app's status code is
//              the answer (the kubelet counts 200-399 as success), a failure to reach it is 500;
//   tcpSocket  a connection opened within the timeout: 200, else 500;
//   grpc       grpc.health.v1.Health/Check over HTTP/2 with the probe's service: SERVING is 200,
//              anything else 500.
// Each within the probe's timeoutSeconds (the kubelet's default, 1 s, when absent).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/address.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/base/status.h"

namespace tern::proxy {

struct AppProbe {
  enum class Kind { kHttp, kTcp, kGrpc };
  Kind kind = Kind::kHttp;
  uint16_t port = 0;
  std::string path = "/";  // httpGet
  bool https = false;
  std::string host;  // httpGet: the address to probe instead of the pod's (and the Host header)
  std::vector<std::pair<std::string, std::string>> headers;
  std::string grpc_service;
  std::chrono::milliseconds timeout{1000};
};

// ISTIO_KUBE_APP_PROBERS: {"/app-health/hello/livez": {"httpGet": {...}, "timeoutSeconds": 1},
// ...}. Errors name the entry and the field.
Result<std::map<std::string, AppProbe>> ParseAppProbers(std::string_view json_text);

struct ProbeOutcome {
  unsigned status = 500;  // what the kubelet is answered
  std::string detail;     // why, for the answer's body and the log
};

// Runs `probe` against the app at `app` (the pod's IP).
boost::asio::awaitable<ProbeOutcome> RunAppProbe(const AppProbe& probe, boost::asio::ip::address app);

}  // namespace tern::proxy
