#include "init/validation.h"

#include <arpa/inet.h>
#include <linux/netfilter_ipv4.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

namespace tern::init {
namespace {

bool InRange(const IpRange& r, const std::array<uint8_t, 16>& addr) {
  if (r.v6) return false;
  for (int bit = 0; bit < r.prefix; ++bit) {
    uint8_t mask = static_cast<uint8_t>(0x80 >> (bit % 8));
    if ((r.address[bit / 8] & mask) != (addr[bit / 8] & mask)) return false;
  }
  return true;
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

Result<ValidationTarget> PickValidationTarget(const capture::CaptureConfig& c) {
  std::vector<std::array<uint8_t, 16>> candidates;
  if (c.include_outbound_ranges.all || !c.include_outbound_ports.ports.empty()) {
    std::array<uint8_t, 16> doc{};
    doc[0] = 192, doc[1] = 0, doc[2] = 2, doc[3] = 1;  // TEST-NET-1 (RFC 5737)
    candidates.push_back(doc);
  }
  for (const auto& r : c.include_outbound_ranges.ranges) {
    if (r.v6 || r.prefix > 30) continue;
    std::array<uint8_t, 16> a = r.address;
    for (int bit = r.prefix; bit < 32; ++bit) a[bit / 8] &= static_cast<uint8_t>(~(0x80 >> (bit % 8)));
    a[3] |= 1;  // the range's first host
    candidates.push_back(a);
  }
  if (candidates.empty()) {
    return Status::Error("outbound capture is configured off (-i is empty and -q lists no port): nothing to validate");
  }
  uint16_t port = 15002;
  if (!c.include_outbound_ranges.all && c.include_outbound_ranges.ranges.empty()) {
    port = c.include_outbound_ports.ports.front();
  }
  while (std::find(c.exclude_outbound_ports.ports.begin(), c.exclude_outbound_ports.ports.end(), port) !=
         c.exclude_outbound_ports.ports.end()) {
    ++port;
  }
  for (const auto& a : candidates) {
    bool excluded = std::any_of(c.exclude_outbound_ranges.ranges.begin(), c.exclude_outbound_ranges.ranges.end(),
                                [&](const IpRange& r) { return InRange(r, a); });
    bool loopback = a[0] == 127;
    if (excluded || loopback) continue;
    char buf[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, a.data(), buf, sizeof buf);
    return ValidationTarget{buf, port};
  }
  return Status::Error("every captured range is also excluded (-x): nothing to validate");
}

Status ValidateCapture(const capture::CaptureConfig& c, std::chrono::milliseconds timeout) {
  auto target = PickValidationTarget(c);
  if (!target.ok()) return target.status();
  Fd listener;
  listener.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  int one = 1;
  ::setsockopt(listener.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in any{};
  any.sin_family = AF_INET;
  any.sin_port = htons(c.outbound_port);
  if (::bind(listener.fd, reinterpret_cast<sockaddr*>(&any), sizeof any) != 0 || ::listen(listener.fd, 8) != 0) {
    return Status::Error("cannot listen on :" + std::to_string(c.outbound_port) + " (" + std::strerror(errno) +
                         "); validation must run before the proxy starts");
  }
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(target->port);
  inet_pton(AF_INET, target->ip.c_str(), &to.sin_addr);
  std::string dest = target->ip + ":" + std::to_string(target->port);

  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string last = "no attempt";
  while (std::chrono::steady_clock::now() < deadline) {
    Fd client;
    client.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int rc = ::connect(client.fd, reinterpret_cast<sockaddr*>(&to), sizeof to);
    if (rc != 0 && errno != EINPROGRESS) {
      last = std::string("connect: ") + std::strerror(errno);
    } else {
      pollfd p{listener.fd, POLLIN, 0};
      if (::poll(&p, 1, 1000) == 1) {
        Fd accepted;
        accepted.fd = ::accept4(listener.fd, nullptr, nullptr, SOCK_CLOEXEC);
        sockaddr_in orig{};
        socklen_t len = sizeof orig;
        if (accepted.fd >= 0 && ::getsockopt(accepted.fd, SOL_IP, SO_ORIGINAL_DST, &orig, &len) == 0) {
          char buf[INET_ADDRSTRLEN];
          inet_ntop(AF_INET, &orig.sin_addr, buf, sizeof buf);
          std::string got = std::string(buf) + ":" + std::to_string(ntohs(orig.sin_port));
          if (got == dest) return Status::Ok();
          last = "the listener saw original destination " + got;
        } else {
          last = "accepted a connection without an original destination (not redirected)";
        }
      } else {
        int err = 0;
        socklen_t elen = sizeof err;
        ::getsockopt(client.fd, SOL_SOCKET, SO_ERROR, &err, &elen);
        last = err ? std::string("connect: ") + std::strerror(err) : "the connection went elsewhere";
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return Status::Error("traffic capture is not in place: a connection to " + dest +
                       " did not reach the outbound listener :" + std::to_string(c.outbound_port) + " within " +
                       std::to_string(timeout.count()) + " ms (last: " + last + ")");
}

}  // namespace tern::init
