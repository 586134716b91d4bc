#include "core/kube/https_get.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <memory>
#include <utility>

#include "core/base/ascii.h"
#include "core/kube/chunked_decoder.h"
#include "core/net/ip_range.h"

namespace tern::kube {

namespace {

using Clock = std::chrono::steady_clock;

int MillisLeft(Clock::time_point end) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

std::string OpenSslError() {
  unsigned long e = ERR_get_error();
  if (e == 0) return "connection closed";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// A non-blocking TCP connection to the first address that answers before the deadline.
Result<int> Connect(const HttpsTarget& t, bool literal, Clock::time_point end, const std::string& where) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  // An IP literal (the usual KUBERNETES_SERVICE_HOST) needs no resolver and no interface dump.
  hints.ai_flags = literal ? AI_NUMERICHOST : AI_ADDRCONFIG;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(t.host.c_str(), std::to_string(t.port).c_str(), &hints, &res);
  if (rc != 0) return Status::Error(where + ": cannot resolve " + t.host + ": " + gai_strerror(rc));
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> list(res, freeaddrinfo);
  std::string last = "no address";
  for (addrinfo* a = res; a; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      last = std::strerror(errno);
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) return fd;
    if (errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      int n = poll(&p, 1, MillisLeft(end));
      int err = 0;
      socklen_t len = sizeof err;
      if (n == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) return fd;
      last = n == 0 ? "connection timed out" : std::strerror(err ? err : errno);
    } else {
      last = std::strerror(errno);
    }
    ::close(fd);
    if (MillisLeft(end) == 0) break;
  }
  return Status::Error(where + ": connect to " + t.host + ":" + std::to_string(t.port) + ": " + last);
}

// Waits for what OpenSSL asked for; false on deadline.
bool WaitFor(int fd, int ssl_error, Clock::time_point end) {
  pollfd p{fd, static_cast<short>(ssl_error == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN), 0};
  return poll(&p, 1, MillisLeft(end)) == 1;
}

// Whether `raw` holds a whole response whose length is known from its framing.
bool ResponseComplete(const std::string& raw) {
  size_t head_end = raw.find("\r\n\r\n");
  if (head_end == std::string::npos) return false;
  std::string_view head(raw.data(), head_end);
  size_t te = head.find("chunked");
  if (te != std::string_view::npos) return raw.size() >= 5 && raw.compare(raw.size() - 5, 5, "0\r\n\r\n") == 0;
  for (size_t at = 0; (at = head.find("\r\n", at)) != std::string_view::npos;) {
    at += 2;
    if (head.size() - at > 15 && AsciiIEquals(head.substr(at, 15), "Content-Length:")) {
      size_t length = std::strtoull(raw.c_str() + at + 15, nullptr, 10);
      return raw.size() - head_end - 4 >= length;
    }
  }
  return false;
}

}  // namespace

namespace {

// A response's status line and framing headers.
struct ResponseHead {
  int status = 0;
  bool chunked = false;
  long long content_length = -1;  // -1: none (the body runs to the end of the stream)
};

// `head`: the status line and header lines, without the blank line that ends them.
Result<ResponseHead> ParseResponseHead(std::string_view head) {
  // "HTTP/1.1 200 OK"
  if (head.substr(0, 5) != "HTTP/") return Status::Error("the response does not start with HTTP/");
  size_t sp = head.find(' ');
  if (sp == std::string_view::npos || sp + 4 > head.size()) return Status::Error("malformed status line");
  ResponseHead r;
  for (size_t i = sp + 1; i < sp + 4; ++i) {
    if (head[i] < '0' || head[i] > '9') return Status::Error("malformed status code");
    r.status = r.status * 10 + (head[i] - '0');
  }
  size_t at = head.find("\r\n");
  while (at != std::string_view::npos && at < head.size()) {
    at += 2;
    size_t eol = std::min(head.find("\r\n", at), head.size());
    std::string_view line = head.substr(at, eol - at);
    at = eol;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view name = line.substr(0, colon), value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    if (AsciiIEquals(name, "Transfer-Encoding") && value.find("chunked") != std::string_view::npos) r.chunked = true;
    if (AsciiIEquals(name, "Content-Length")) {
      r.content_length = 0;
      for (char c : value) {
        if (c < '0' || c > '9' || r.content_length > (1LL << 40)) return Status::Error("malformed Content-Length");
        r.content_length = r.content_length * 10 + (c - '0');
      }
    }
  }
  return r;
}

}  // namespace

Result<HttpsResponse> ParseHttpResponse(const std::string& raw) {
  size_t head_end = raw.find("\r\n\r\n");
  if (head_end == std::string::npos) return Status::Error("the response has no complete header");
  auto head = ParseResponseHead(std::string_view(raw.data(), head_end));
  if (!head.ok()) return head.status();
  const bool chunked = head->chunked;
  const long long content_length = head->content_length;
  HttpsResponse r;
  r.status = head->status;
  std::string_view rest(raw.data() + head_end + 4, raw.size() - head_end - 4);
  if (chunked) {
    ChunkedDecoder decoder;
    if (Status st = decoder.Feed(rest, r.body); !st.ok()) return st;
    if (!decoder.done()) return Status::Error("truncated chunked body");
  } else if (content_length >= 0) {
    if (rest.size() < static_cast<size_t>(content_length)) return Status::Error("truncated body");
    r.body.assign(rest.data(), static_cast<size_t>(content_length));
  } else {
    r.body.assign(rest);
  }
  return r;
}

namespace {

// A TLS connection that sent its GET: its socket, its TLS state.
struct SentRequest {
  Fd fd;
  std::unique_ptr<SSL, void (*)(SSL*)> ssl{nullptr, SSL_free};
};

// Connects, completes the TLS handshake (the server proven to be `target.host`) and sends the
// request (`body`, when not empty, as application/json), all before `end`.
Status SendRequest(SSL_CTX* ctx, const HttpsTarget& target, const std::string& method, const std::string& path,
                   const std::vector<std::string>& headers, const std::string& body, Clock::time_point end,
                   std::chrono::milliseconds deadline, const std::string& where, SentRequest& out) {
  const bool is_ip = IsIpAddress(target.host);
  auto fd_or = Connect(target, is_ip, end, where);
  if (!fd_or.ok()) return fd_or.status();
  out.fd.fd = *fd_or;
  out.ssl.reset(SSL_new(ctx));
  SSL* ssl = out.ssl.get();
  if (!ssl) return Status::Error(where + ": TLS: " + OpenSslError());
  SSL_set_fd(ssl, out.fd.fd);
  // The server must prove it is `host`: an IP literal is matched against the certificate's IP
  // SANs, a name against its DNS SANs (and sent as SNI).
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  if (is_ip) {
    X509_VERIFY_PARAM_set1_ip_asc(param, target.host.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl, target.host.c_str());
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    X509_VERIFY_PARAM_set1_host(param, target.host.c_str(), 0);
  }
  for (;;) {
    int rc = SSL_connect(ssl);
    if (rc == 1) break;
    int err = SSL_get_error(ssl, rc);
    if ((err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) && WaitFor(out.fd.fd, err, end)) continue;
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      return Status::Error(where + ": TLS handshake timed out after " + std::to_string(deadline.count()) + " ms");
    }
    long verify = SSL_get_verify_result(ssl);
    if (verify != X509_V_OK) {
      ERR_clear_error();
      return Status::Error(where + ": TLS: the API server's certificate is not trusted (" +
                           X509_verify_cert_error_string(verify) + ")");
    }
    return Status::Error(where + ": TLS handshake failed: " + OpenSslError());
  }

  std::string host_header = target.host.find(':') != std::string::npos ? "[" + target.host + "]" : target.host;
  std::string request = method + " " + path + " HTTP/1.1\r\nHost: " + host_header + ":" + std::to_string(target.port) +
                        "\r\nUser-Agent: tern/0.1\r\nConnection: close\r\n";
  for (const auto& h : headers) request += h + "\r\n";
  if (!body.empty() || method != "GET") {
    request += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  request += "\r\n" + body;
  size_t sent = 0;
  while (sent < request.size()) {
    int n = SSL_write(ssl, request.data() + sent, static_cast<int>(request.size() - sent));
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    int err = SSL_get_error(ssl, n);
    if ((err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) && WaitFor(out.fd.fd, err, end)) continue;
    return Status::Error(where + ": sending the request failed: " +
                         (MillisLeft(end) == 0 ? std::string("timed out") : OpenSslError()));
  }
  return Status::Ok();
}

}  // namespace

Result<HttpsResponse> HttpsGet(SSL_CTX* ctx, const HttpsTarget& target, const std::string& path,
                               const std::vector<std::string>& headers, std::chrono::milliseconds deadline,
                               size_t max_body) {
  return HttpsRequest(ctx, target, "GET", path, headers, "", deadline, max_body);
}

Result<HttpsResponse> HttpsRequest(SSL_CTX* ctx, const HttpsTarget& target, const std::string& method,
                                   const std::string& path, const std::vector<std::string>& headers, const std::string& body,
                                   std::chrono::milliseconds deadline, size_t max_body) {
  const std::string where = method + " " + path;
  const Clock::time_point end = Clock::now() + deadline;
  SentRequest conn;
  if (Status st = SendRequest(ctx, target, method, path, headers, body, end, deadline, where, conn); !st.ok()) return st;
  SSL* ssl = conn.ssl.get();
  Fd& fd = conn.fd;

  // The server closes after the response (Connection: close); read until then.
  std::string raw;
  char buf[16384];
  for (;;) {
    int n = SSL_read(ssl, buf, sizeof buf);
    if (n > 0) {
      raw.append(buf, static_cast<size_t>(n));
      if (raw.size() > max_body + 65536) {
        return Status::Error(where + ": the response exceeds " + std::to_string(max_body) + " bytes");
      }
      // A server that keeps the connection open anyway must not cost the deadline.
      if (ResponseComplete(raw)) break;
      continue;
    }
    int err = SSL_get_error(ssl, n);
    if (err == SSL_ERROR_ZERO_RETURN) break;
    if ((err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)) {
      if (WaitFor(fd.fd, err, end)) continue;
      return Status::Error(where + ": no complete answer within " + std::to_string(deadline.count()) + " ms");
    }
    // A peer that closes TCP without close_notify: accept what arrived if it is complete.
    ERR_clear_error();
    break;
  }
  auto parsed = ParseHttpResponse(raw);
  if (!parsed.ok()) return parsed.status().Context(where);
  return parsed;
}

Result<StreamedAnswer> HttpsGetLines(SSL_CTX* ctx, const HttpsTarget& target, const std::string& path,
                                     const std::vector<std::string>& headers, const LineStreamLimits& limits, int stop_fd,
                                     const OnLine& on_line) {
  const std::string where = "GET " + path;
  const Clock::time_point end = Clock::now() + limits.head_deadline;
  SentRequest conn;
  if (Status st = SendRequest(ctx, target, "GET", path, headers, "", end, limits.head_deadline, where, conn); !st.ok()) {
    return st;
  }
  SSL* ssl = conn.ssl.get();
  const int fd = conn.fd.fd;
  StreamedAnswer answer;

  // Reads what is there into `raw`: >0 bytes read, 0 the stream ended, -1 nothing before
  // `until` (or the stop), -2 a failure (`why` says).
  std::string why;
  char buf[16384];
  auto read_some = [&](std::string& raw, Clock::time_point until) -> int {
    for (;;) {
      int n = SSL_read(ssl, buf, sizeof buf);
      if (n > 0) {
        raw.append(buf, static_cast<size_t>(n));
        return n;
      }
      int err = SSL_get_error(ssl, n);
      if (err == SSL_ERROR_ZERO_RETURN) return 0;
      if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
        ERR_clear_error();
        return 0;  // a peer that closes TCP without close_notify: the stream ended
      }
      pollfd p[2] = {{fd, static_cast<short>(err == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN), 0}, {stop_fd, POLLIN, 0}};
      int ready = poll(p, stop_fd >= 0 ? 2 : 1, MillisLeft(until));
      if (ready < 0 && errno != EINTR) {
        why = std::strerror(errno);
        return -2;
      }
      if (stop_fd >= 0 && (p[1].revents & POLLIN)) {
        answer.stopped = true;
        return -1;
      }
      if (ready == 0) return -1;
    }
  };

  // The head, within the head deadline.
  std::string raw;
  size_t head_end;
  while ((head_end = raw.find("\r\n\r\n")) == std::string::npos) {
    if (raw.size() > 65536) return Status::Error(where + ": the response head exceeds 64 KiB");
    int n = read_some(raw, end);
    if (answer.stopped) return answer;
    if (n == 0) return Status::Error(where + ": the connection ended before the response head");
    if (n == -1) return Status::Error(where + ": no response head within " + std::to_string(limits.head_deadline.count()) + " ms");
    if (n == -2) return Status::Error(where + ": " + why);
  }
  auto head = ParseResponseHead(std::string_view(raw.data(), head_end));
  if (!head.ok()) return head.status().Context(where);
  answer.status = head->status;
  if (answer.status != 200) {
    // An error's body (a Status object) is read whole, within the head deadline.
    while (!ResponseComplete(raw) && raw.size() <= limits.max_line + 65536) {
      int n = read_some(raw, end);
      if (n <= 0) break;
    }
    auto whole = ParseHttpResponse(raw);
    if (whole.ok()) answer.body = std::move(whole->body);
    return answer;
  }

  // The body, line by line as it arrives; each read within the idle limit.
  ChunkedDecoder chunks;
  std::string lines;
  std::string skipped;  // an oversized line being skipped: its first bytes
  std::string_view pending(raw);
  pending.remove_prefix(head_end + 4);
  long long length_left = head->content_length;
  for (;;) {
    if (head->chunked) {
      if (Status st = chunks.Feed(pending, lines); !st.ok()) return st.Context(where);
    } else {
      size_t n = length_left >= 0 ? std::min<size_t>(pending.size(), static_cast<size_t>(length_left)) : pending.size();
      lines.append(pending.substr(0, n));
      if (length_left >= 0) length_left -= static_cast<long long>(n);
    }
    size_t from = 0;
    for (size_t eol; (eol = lines.find('\n', from)) != std::string::npos; from = eol + 1) {
      std::string_view line = std::string_view(lines).substr(from, eol - from);
      bool go_on = true;
      if (!skipped.empty()) go_on = on_line(std::exchange(skipped, {}), true);  // the skipped line's end
      else if (line.size() > limits.max_line) go_on = on_line(line.substr(0, kOversizedPrefix), true);
      else if (!line.empty()) go_on = on_line(line, false);
      if (!go_on) return answer;
    }
    lines.erase(0, from);
    if (lines.size() > limits.max_line) {  // not kept: only its first bytes, until its end comes
      if (skipped.empty()) skipped = lines.substr(0, kOversizedPrefix);
      lines.clear();
    }
    if (chunks.done() || length_left == 0) break;
    raw.clear();
    int n = read_some(raw, Clock::now() + limits.idle);
    if (answer.stopped) return answer;
    if (n == 0) {
      if (head->chunked || length_left > 0) answer.cut = true;  // ended without its framing's end
      break;
    }
    if (n == -1) return Status::Error(where + ": nothing from the server for " + std::to_string(limits.idle.count()) + " ms");
    if (n == -2) return Status::Error(where + ": " + why);
    pending = raw;
  }
  if (!answer.cut && !skipped.empty()) on_line(skipped, true);
  else if (!answer.cut && !lines.empty()) on_line(lines, false);  // a last line without its newline
  return answer;
}

}  // namespace tern::kube
