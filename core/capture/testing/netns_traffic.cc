#include "core/capture/testing/netns_traffic.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/fsuid.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <thread>

namespace tern::nettest {

std::string RunShell(const std::string& cmd, int* status) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int rc = pclose(p);
  if (status) *status = rc;
  return out;
}

Netns::Netns(const std::string& suffix) : name_("tern-t" + std::to_string(getpid()) + "-" + suffix) {
  RunShell("ip netns del " + name_);
  for (const std::string& cmd : {"ip netns add " + name_, "ip -n " + name_ + " link set lo up"}) {
    int rc = 0;
    std::string out = RunShell(cmd, &rc);
    if (rc != 0 && error_.empty()) error_ = cmd + ": " + out;
  }
}

Netns::~Netns() { RunShell("ip netns del " + name_); }

std::string Netns::Exec(const std::string& cmd, int* status) const {
  return RunShell("ip netns exec " + name_ + " " + cmd, status);
}

namespace {

sockaddr_storage Addr(const Endpoint& e, socklen_t* len) {
  sockaddr_storage ss{};
  if (e.ip.find(':') != std::string::npos) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(e.port);
    inet_pton(AF_INET6, e.ip.c_str(), &a->sin6_addr);
    *len = sizeof(sockaddr_in6);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(e.port);
    inet_pton(AF_INET, e.ip.c_str(), &a->sin_addr);
    *len = sizeof(sockaddr_in);
  }
  return ss;
}

Endpoint FromAddr(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
    return {buf, ntohs(a->sin6_port)};
  }
  auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
  inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
  return {buf, ntohs(a->sin_port)};
}

int FamilyOf(const Endpoint& e) { return e.ip.find(':') != std::string::npos ? AF_INET6 : AF_INET; }

}  // namespace

std::string ToString(const Endpoint& e) {
  return (FamilyOf(e) == AF_INET6 ? "[" + e.ip + "]" : e.ip) + ":" + std::to_string(e.port);
}

int SocketIn(const Netns& netns, int family, uid_t uid, gid_t gid) {
  int fd = -1;
  std::thread t([&] {
    int nsfd = open(netns.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) != 0) return;
    close(nsfd);
    setfsgid(gid);
    setfsuid(uid);
    fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  });
  t.join();
  return fd;
}

Listener::Listener(const Netns& ns, const Endpoint& at, bool transparent) {
  int family = FamilyOf(at);
  fd_ = SocketIn(ns, family);
  int one = 1;
  setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (transparent) {
    setsockopt(fd_, family == AF_INET6 ? SOL_IPV6 : SOL_IP, family == AF_INET6 ? IPV6_TRANSPARENT : IP_TRANSPARENT,
               &one, sizeof one);
  }
  if (family == AF_INET6) setsockopt(fd_, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  socklen_t len;
  sockaddr_storage ss = Addr(at, &len);
  ok_ = bind(fd_, reinterpret_cast<sockaddr*>(&ss), len) == 0 && listen(fd_, 16) == 0;
}

Listener::~Listener() { close(fd_); }

bool Listener::Accept(Endpoint* local, Endpoint* original) {
  pollfd p{fd_, POLLIN, 0};
  if (poll(&p, 1, 3000) != 1) return false;
  int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
  if (c < 0) return false;
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  getsockname(c, reinterpret_cast<sockaddr*>(&ss), &len);
  *local = FromAddr(ss);
  sockaddr_storage orig{};
  len = sizeof orig;
  int rc = ss.ss_family == AF_INET6 ? getsockopt(c, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &orig, &len)
                                    : getsockopt(c, SOL_IP, SO_ORIGINAL_DST, &orig, &len);
  *original = rc == 0 ? FromAddr(orig) : *local;
  close(c);
  return true;
}

bool Connect(const Netns& netns, const Endpoint& to, uid_t uid) {
  int fd = SocketIn(netns, FamilyOf(to), uid, uid);
  if (fd < 0) return false;
  socklen_t len;
  sockaddr_storage ss = Addr(to, &len);
  connect(fd, reinterpret_cast<sockaddr*>(&ss), len);
  pollfd p{fd, POLLOUT, 0};
  bool done = poll(&p, 1, 3000) == 1;
  int err = 0;
  socklen_t elen = sizeof err;
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
  close(fd);
  return done && err == 0;
}

bool WaitLinkUp(const std::string& netns_name, const std::string& ifname) {
  for (int i = 0; i < 60; ++i) {
    if (RunShell("ip -n " + netns_name + " link show " + ifname).find("state UP") != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

}  // namespace tern::nettest
