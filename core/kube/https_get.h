// One HTTPS/1.1 GET on a fresh connection, with one deadline for the whole exchange (resolve,
// connect, TLS handshake, request, response). Made for short-lived processes such as tern-cni,
// which read one object and exit: no connection pool, no threads, no sleeps, nothing loaded
// beyond OpenSSL. Server identity: the given CA store only, and the host name or IP address
// checked by OpenSSL during the handshake.
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <string>
#include <vector>

#include "core/base/status.h"

namespace tern::kube {

struct HttpsTarget {
  std::string host;  // name or IP literal (no brackets)
  int port = 443;
};

struct HttpsResponse {
  int status = 0;
  std::string body;
};

// `ctx` must already verify peers against the intended CA. `headers` are "Name: value" lines.
// Bodies larger than `max_body` bytes are an error.
Result<HttpsResponse> HttpsGet(SSL_CTX* ctx, const HttpsTarget& target, const std::string& path,
                               const std::vector<std::string>& headers, std::chrono::milliseconds deadline,
                               size_t max_body = 16 << 20);

// Decodes an HTTP/1.1 response (status line, headers, body by Content-Length, chunked, or up to
// the end of the stream). Exposed for tests.
Result<HttpsResponse> ParseHttpResponse(const std::string& raw);

}  // namespace tern::kube
