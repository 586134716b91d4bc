// ternctl's commands that ask a running ternd (over HTTPS, verified against --ca):
//   ternctl proxy-status --ternd HOST:PORT --ca FILE
//       every connected proxy: pod, namespace, the snapshot version sent and acknowledged
//   ternctl proxy-config NAME.NAMESPACE --ternd HOST:PORT --ca FILE
//       the snapshot that proxy was last sent (the document `tern-proxy --config` reads)
#pragma once

namespace tern::webhook {

int ProxyStatusCommand(int argc, char** argv);
int ProxyConfigCommand(int argc, char** argv);

}  // namespace tern::webhook
