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

#include <algorithm>
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

PodAndPeer::PodAndPeer(const std::string& suffix) : pod("pod" + suffix), peer("peer" + suffix) {
  error_ = !pod.error().empty() ? pod.error() : peer.error();
  std::string veth = "tv" + std::to_string(getpid() % 100000) + suffix;
  const std::string p = pod.name(), q = peer.name(), a = veth + "a", b = veth + "b";
  for (const std::string& cmd : {
           "ip link add " + a + " netns " + p + " type veth peer name " + b + " netns " + q,
           "ip -n " + p + " addr add 10.200.0.1/24 dev " + a,
           "ip -n " + p + " addr add fd00:200::1/64 dev " + a + " nodad",
           "ip -n " + q + " addr add 10.200.0.2/24 dev " + b,
           "ip -n " + q + " addr add 10.200.0.3/24 dev " + b,
           "ip -n " + q + " addr add fd00:200::2/64 dev " + b + " nodad",
           "ip -n " + q + " addr add 192.0.2.1/32 dev " + b,
           "ip -n " + p + " link set " + a + " up",
           "ip -n " + q + " link set " + b + " up",
           "ip -n " + p + " route add default via 10.200.0.2",
       }) {
    int rc = 0;
    std::string out = RunShell(cmd, &rc);
    if (rc != 0 && error_.empty()) error_ = cmd + ": " + out;
  }
  // Carrier comes up asynchronously; wait (bounded) so the first connections do not race it.
  if (error_.empty() && (!WaitLinkUp(p, a) || !WaitLinkUp(q, b))) error_ = "the veth pair did not come up";
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
  Endpoint peer;
  int c = AcceptConnection(local, &peer);
  if (c < 0) return false;
  sockaddr_storage orig{};
  socklen_t len = sizeof orig;
  int rc = FamilyOf(*local) == AF_INET6 ? getsockopt(c, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &orig, &len)
                                        : getsockopt(c, SOL_IP, SO_ORIGINAL_DST, &orig, &len);
  *original = rc == 0 ? FromAddr(orig) : *local;
  close(c);
  return true;
}

int Listener::AcceptConnection(Endpoint* local, Endpoint* peer) {
  pollfd p{fd_, POLLIN, 0};
  if (poll(&p, 1, 3000) != 1) return -1;
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  int c = accept4(fd_, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_CLOEXEC);
  if (c < 0) return -1;
  *peer = FromAddr(ss);
  len = sizeof ss;
  getsockname(c, reinterpret_cast<sockaddr*>(&ss), &len);
  *local = FromAddr(ss);
  return c;
}

int ConnectSocket(const Netns& netns, const Endpoint& to, uid_t uid) {
  int fd = SocketIn(netns, FamilyOf(to), uid, uid);
  if (fd < 0) return -1;
  socklen_t len;
  sockaddr_storage ss = Addr(to, &len);
  connect(fd, reinterpret_cast<sockaddr*>(&ss), len);
  pollfd p{fd, POLLOUT, 0};
  int err = 0;
  socklen_t elen = sizeof err;
  if (poll(&p, 1, 3000) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err != 0) {
    close(fd);
    return -1;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

bool SendAll(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

std::string Receive(int fd, size_t n) {
  std::string out;
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  char buf[4096];
  while (out.size() < n) {
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now()).count());
    pollfd p{fd, POLLIN, 0};
    if (left <= 0 || poll(&p, 1, left) != 1) break;
    ssize_t got = recv(fd, buf, std::min(sizeof buf, n - out.size()), 0);
    if (got <= 0) break;
    out.append(buf, static_cast<size_t>(got));
  }
  return out;
}

bool Connect(const Netns& netns, const Endpoint& to, uid_t uid) {
  int fd = ConnectSocket(netns, to, uid);
  if (fd < 0) return false;
  close(fd);
  return true;
}

bool WaitLinkUp(const std::string& netns_name, const std::string& ifname) {
  for (int i = 0; i < 60; ++i) {
    if (RunShell("ip -n " + netns_name + " link show " + ifname).find("state UP") != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

}  // namespace tern::nettest
