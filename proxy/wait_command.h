// `tern-proxy wait`: returns once the sidecar is ready, for the classic layout's postStart hook
// (the kubelet starts the app container only after it), as Istio's `pilot-agent wait`.
//   tern-proxy wait [--timeout 60s] [--period 500ms] [--url http://127.0.0.1:15021/healthz/ready]
// Exit 0 when the URL answered 200 within the timeout, 1 when it did not, 2 on bad flags.
#pragma once

namespace tern::proxy {

int RunWaitCommand(int argc, const char* const* argv);

}  // namespace tern::proxy
