// One HTTPS/1.1 GET on a fresh connection, with one deadline for the whole exchange (resolve,
// connect, TLS handshake, request, response). Made for short-lived processes such as tern-cni,
// which read one object and exit: no connection pool, no threads, no sleeps, nothing loaded
// beyond OpenSSL. Server identity: the given CA store only, and the host name or IP address
// checked by OpenSSL during the handshake.
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
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

// The same with another method and a JSON body (POST of a TokenReview).
Result<HttpsResponse> HttpsRequest(SSL_CTX* ctx, const HttpsTarget& target, const std::string& method,
                                   const std::string& path, const std::vector<std::string>& headers, const std::string& body,
                                   std::chrono::milliseconds deadline, size_t max_body = 16 << 20);

// A GET whose body is a stream of lines (a Kubernetes watch: one JSON event a line, for minutes).
struct LineStreamLimits {
  std::chrono::milliseconds head_deadline{10000};  // connect, TLS, request and the answer's head
  std::chrono::milliseconds idle{90000};           // then each wait for more of the body
  size_t max_line = 16 << 20;                      // one line's bytes (one event's object)
};
inline constexpr size_t kOversizedPrefix = 256;
using OnLine = std::function<bool(std::string_view line, bool oversized)>;
struct StreamedAnswer {
  int status = 0;
  std::string body;      // an answer other than 200: its body, whole (the API's Status object)
  bool stopped = false;  // `stop_fd` became readable
  bool cut = false;      // the body ended before its framing said it would (a dropped connection)
};
// Sends the GET and, on 200, hands each line of the body to `on_line` as it arrives (without
// its '\n'; empty lines skipped), until the body ends, `on_line` returns false, `stop_fd`
// (-1: none) becomes readable, or nothing arrives for `limits.idle`: errors say which. A line
// cut off by the connection's end is dropped (`cut`), never handed over. A line over
// `limits.max_line` is not kept: `on_line` gets its first kOversizedPrefix bytes and
// `oversized`, and the stream goes on with the next line.
Result<StreamedAnswer> HttpsGetLines(SSL_CTX* ctx, const HttpsTarget& target, const std::string& path,
                                     const std::vector<std::string>& headers, const LineStreamLimits& limits, int stop_fd,
                                     const OnLine& on_line);

// Decodes an HTTP/1.1 response (status line, headers, body by Content-Length, chunked, or up to
// the end of the stream). Exposed for tests.
Result<HttpsResponse> ParseHttpResponse(const std::string& raw);

}  // namespace tern::kube
