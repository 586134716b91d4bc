#include "proxy/wait_command.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <string>
#include <thread>

#include "core/base/flags.h"
#include "core/istio/duration.h"

namespace tern::proxy {

namespace {

struct Url {
  std::string host;
  uint16_t port = 80;
  std::string path = "/";
};

// "http://127.0.0.1:15021/healthz/ready": IPv4 literal hosts only (it is always the pod's own).
bool ParseUrl(const std::string& text, Url* url) {
  const std::string scheme = "http://";
  if (text.rfind(scheme, 0) != 0) return false;
  std::string rest = text.substr(scheme.size());
  size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  url->path = slash == std::string::npos ? "/" : rest.substr(slash);
  size_t colon = authority.rfind(':');
  url->host = authority.substr(0, colon);
  if (colon != std::string::npos) {
    std::string port = authority.substr(colon + 1);
    if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) return false;
    int n = std::stoi(port);
    if (n < 1 || n > 65535) return false;
    url->port = static_cast<uint16_t>(n);
  }
  in_addr ignored;
  return inet_pton(AF_INET, url->host.c_str(), &ignored) == 1;
}

// The status code of a GET, 0 when there was no answer within `timeout`.
int Get(const Url& url, std::chrono::milliseconds timeout) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  timeval tv{.tv_sec = static_cast<time_t>(timeout.count() / 1000), .tv_usec = static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(url.port);
  inet_pton(AF_INET, url.host.c_str(), &to.sin_addr);
  int status = 0;
  if (connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0) {
    std::string request = "GET " + url.path + " HTTP/1.1\r\nHost: " + url.host + "\r\nConnection: close\r\n\r\n";
    if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size())) {
      char buf[64];
      std::string in;
      for (ssize_t n; in.size() < 12 && (n = recv(fd, buf, sizeof buf, 0)) > 0;) in.append(buf, static_cast<size_t>(n));
      if (in.size() >= 12 && in.rfind("HTTP/1.", 0) == 0) status = std::atoi(in.substr(9, 3).c_str());
    }
  }
  close(fd);
  return status;
}

}  // namespace

int RunWaitCommand(int argc, const char* const* argv) {
  std::string timeout_text = "60s", period_text = "500ms", url_text = "http://127.0.0.1:15021/healthz/ready";
  FlagSet flags("tern-proxy wait");
  flags.String("timeout", &timeout_text, "how long to wait for readiness (60s)");
  flags.String("period", &period_text, "how often to ask (500ms)");
  flags.String("url", &url_text, "the readiness URL (http://127.0.0.1:15021/healthz/ready)");
  bool help = false;
  if (Status s = flags.Parse(argc, argv, &help); !s.ok()) {
    std::cerr << "tern-proxy wait: " << s.message() << "\n" << flags.Usage();
    return 2;
  }
  if (help) {
    std::cout << flags.Usage();
    return 0;
  }
  auto timeout = istio::ParseDuration(timeout_text);
  auto period = istio::ParseDuration(period_text);
  Url url;
  if (!timeout.ok() || !period.ok() || *period <= istio::Duration::zero() || !ParseUrl(url_text, &url)) {
    std::cerr << "tern-proxy wait: --timeout and --period take durations (\"60s\", \"500ms\"); --url an "
                 "http://IPv4:PORT/PATH\n";
    return 2;
  }
  using Clock = std::chrono::steady_clock;
  const auto give_up = Clock::now() + *timeout;
  const auto step = std::chrono::duration_cast<std::chrono::milliseconds>(*period);
  int last = 0;
  for (int attempt = 1;; ++attempt) {
    last = Get(url, std::max(step, std::chrono::milliseconds(1000)));
    if (last == 200) {
      std::cerr << "tern-proxy wait: ready after " << attempt << " attempt(s)\n";
      return 0;
    }
    if (Clock::now() + step >= give_up) break;
    std::this_thread::sleep_for(step);
  }
  std::cerr << "tern-proxy wait: " << url_text << " not ready within " << timeout_text << " (last answer: "
            << (last ? std::to_string(last) : std::string("none")) << ")\n";
  return 1;
}

}  // namespace tern::proxy
