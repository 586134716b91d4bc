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
#include <cstring>
#include <memory>

#include "core/base/ascii.h"
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

Result<HttpsResponse> ParseHttpResponse(const std::string& raw) {
  size_t head_end = raw.find("\r\n\r\n");
  if (head_end == std::string::npos) return Status::Error("the response has no complete header");
  // "HTTP/1.1 200 OK"
  if (raw.compare(0, 5, "HTTP/") != 0) return Status::Error("the response does not start with HTTP/");
  size_t sp = raw.find(' ');
  if (sp == std::string::npos || sp + 4 > head_end) return Status::Error("malformed status line");
  int status = 0;
  for (size_t i = sp + 1; i < sp + 4; ++i) {
    if (raw[i] < '0' || raw[i] > '9') return Status::Error("malformed status code");
    status = status * 10 + (raw[i] - '0');
  }
  bool chunked = false;
  long long content_length = -1;
  size_t at = raw.find("\r\n") + 2;
  while (at < head_end) {
    size_t eol = raw.find("\r\n", at);
    std::string_view line(raw.data() + at, eol - at);
    at = eol + 2;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view name = line.substr(0, colon), value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    if (AsciiIEquals(name, "Transfer-Encoding") && value.find("chunked") != std::string_view::npos) chunked = true;
    if (AsciiIEquals(name, "Content-Length")) {
      content_length = 0;
      for (char c : value) {
        if (c < '0' || c > '9' || content_length > (1LL << 40)) return Status::Error("malformed Content-Length");
        content_length = content_length * 10 + (c - '0');
      }
    }
  }
  HttpsResponse r;
  r.status = status;
  std::string_view rest(raw.data() + head_end + 4, raw.size() - head_end - 4);
  if (chunked) {
    for (;;) {
      size_t eol = rest.find("\r\n");
      if (eol == std::string_view::npos) return Status::Error("truncated chunked body");
      size_t size = 0;
      size_t i = 0;
      for (; i < eol && AsciiHexValue(rest[i]) >= 0; ++i) {
        if (size > (1u << 30)) return Status::Error("chunk too large");
        size = size * 16 + static_cast<size_t>(AsciiHexValue(rest[i]));
      }
      if (i == 0) return Status::Error("malformed chunk size");
      rest.remove_prefix(eol + 2);
      if (size == 0) break;
      if (rest.size() < size + 2) return Status::Error("truncated chunked body");
      r.body.append(rest.data(), size);
      rest.remove_prefix(size + 2);
    }
  } else if (content_length >= 0) {
    if (rest.size() < static_cast<size_t>(content_length)) return Status::Error("truncated body");
    r.body.assign(rest.data(), static_cast<size_t>(content_length));
  } else {
    r.body.assign(rest);
  }
  return r;
}

Result<HttpsResponse> HttpsGet(SSL_CTX* ctx, const HttpsTarget& target, const std::string& path,
                               const std::vector<std::string>& headers, std::chrono::milliseconds deadline,
                               size_t max_body) {
  const std::string where = "GET " + path;
  const Clock::time_point end = Clock::now() + deadline;
  const bool is_ip = IsIpAddress(target.host);
  auto fd_or = Connect(target, is_ip, end, where);
  if (!fd_or.ok()) return fd_or.status();
  Fd fd{*fd_or};

  std::unique_ptr<SSL, void (*)(SSL*)> ssl(SSL_new(ctx), SSL_free);
  if (!ssl) return Status::Error(where + ": TLS: " + OpenSslError());
  SSL_set_fd(ssl.get(), fd.fd);
  // The server must prove it is `host`: an IP literal is matched against the certificate's IP
  // SANs, a name against its DNS SANs (and sent as SNI).
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl.get());
  if (is_ip) {
    X509_VERIFY_PARAM_set1_ip_asc(param, target.host.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl.get(), target.host.c_str());
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    X509_VERIFY_PARAM_set1_host(param, target.host.c_str(), 0);
  }
  for (;;) {
    int rc = SSL_connect(ssl.get());
    if (rc == 1) break;
    int err = SSL_get_error(ssl.get(), rc);
    if ((err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) && WaitFor(fd.fd, err, end)) continue;
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      return Status::Error(where + ": TLS handshake timed out after " + std::to_string(deadline.count()) + " ms");
    }
    long verify = SSL_get_verify_result(ssl.get());
    if (verify != X509_V_OK) {
      ERR_clear_error();
      return Status::Error(where + ": TLS: the API server's certificate is not trusted (" +
                           X509_verify_cert_error_string(verify) + ")");
    }
    return Status::Error(where + ": TLS handshake failed: " + OpenSslError());
  }

  std::string host_header = target.host.find(':') != std::string::npos ? "[" + target.host + "]" : target.host;
  std::string request = "GET " + path + " HTTP/1.1\r\nHost: " + host_header + ":" + std::to_string(target.port) +
                        "\r\nUser-Agent: tern/0.1\r\nConnection: close\r\n";
  for (const auto& h : headers) request += h + "\r\n";
  request += "\r\n";
  size_t sent = 0;
  while (sent < request.size()) {
    int n = SSL_write(ssl.get(), request.data() + sent, static_cast<int>(request.size() - sent));
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    int err = SSL_get_error(ssl.get(), n);
    if ((err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) && WaitFor(fd.fd, err, end)) continue;
    return Status::Error(where + ": sending the request failed: " +
                         (MillisLeft(end) == 0 ? std::string("timed out") : OpenSslError()));
  }

  // The server closes after the response (Connection: close); read until then.
  std::string raw;
  char buf[16384];
  for (;;) {
    int n = SSL_read(ssl.get(), buf, sizeof buf);
    if (n > 0) {
      raw.append(buf, static_cast<size_t>(n));
      if (raw.size() > max_body + 65536) {
        return Status::Error(where + ": the response exceeds " + std::to_string(max_body) + " bytes");
      }
      // A server that keeps the connection open anyway must not cost the deadline.
      if (ResponseComplete(raw)) break;
      continue;
    }
    int err = SSL_get_error(ssl.get(), n);
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

}  // namespace tern::kube
