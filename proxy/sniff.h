// Protocol sniffing on a connection's first bytes, as Istio does for ports whose protocol is not
// declared: TLS (a ClientHello record), HTTP/2 with prior knowledge (the connection preface),
// HTTP/1.x (a method token, a space, a request target, a version), else opaque TCP. Pure: the
// caller reads, asks, and reads more while the answer is kNeedMore (within its time budget).
#pragma once

#include <string_view>

namespace tern::proxy {

enum class Sniffed { kNeedMore, kTls, kHttp2, kHttp1, kTcp };
const char* SniffedName(Sniffed s);

Sniffed SniffProtocol(std::string_view first_bytes);

}  // namespace tern::proxy
