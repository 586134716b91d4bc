// Test helpers for capture on a real kernel: network namespaces that live as long as an object,
// sockets made inside them as a chosen uid, listeners that report the original destination of
// what they accept. Shared by the tern-init, tern-cni and go-cni tests and the demo; no gtest
// here (sh.h has the asserting shell helper for tests).
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <cstdint>
#include <string>

namespace tern::nettest {

// Runs `cmd` through the shell, stderr folded into the returned output.
std::string RunShell(const std::string& cmd, int* status = nullptr);

// A named network namespace (`ip netns add`, lo up) deleted with the object.
class Netns {
 public:
  explicit Netns(const std::string& suffix);
  ~Netns();
  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;
  // Empty when the namespace was made; else what `ip` said.
  const std::string& error() const { return error_; }
  const std::string& name() const { return name_; }
  std::string path() const { return "/var/run/netns/" + name_; }
  std::string Exec(const std::string& cmd, int* status = nullptr) const;

 private:
  std::string name_;
  std::string error_;
};

// Two namespaces joined by a veth pair, as a pod and the rest of the network:
//   pod   10.200.0.1/24, fd00:200::1/64, default route via the peer;
//   peer  10.200.0.2, 10.200.0.3, fd00:200::2 and 192.0.2.1 (tern-init's validation target).
class PodAndPeer {
 public:
  explicit PodAndPeer(const std::string& suffix = "");
  const std::string& error() const { return error_; }  // empty when everything is wired
  Netns pod, peer;

 private:
  std::string error_;
};

struct Endpoint {
  std::string ip;
  uint16_t port = 0;
  bool operator==(const Endpoint&) const = default;
};
std::string ToString(const Endpoint& e);

// A stream socket created inside `netns` with file-system ids uid/gid: netfilter's skuid/skgid
// come from the creating thread's fsuid, which setfsuid changes for that thread alone.
int SocketIn(const Netns& netns, int family, uid_t uid = 0, gid_t gid = 0);

class Listener {
 public:
  // `transparent`: TPROXY delivers connections addressed elsewhere; only such a socket accepts them.
  Listener(const Netns& ns, const Endpoint& at, bool transparent = false);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  bool ok() const { return ok_; }
  // The next connection within three seconds: its local address and its original destination.
  bool Accept(Endpoint* local, Endpoint* original);
  // The same, keeping the connection: its fd (blocking; the caller closes it), or -1. `peer`
  // gets the remote address.
  int AcceptConnection(Endpoint* local, Endpoint* peer);

 private:
  int fd_ = -1;
  bool ok_ = false;
};

// Connects from `netns` as `uid`; true once the TCP handshake completed within three seconds.
bool Connect(const Netns& netns, const Endpoint& to, uid_t uid);

// A connected, blocking socket from `netns` as `uid` (three-second handshake budget), or -1.
int ConnectSocket(const Netns& netns, const Endpoint& to, uid_t uid);
// Writes all of `data`; reads until `n` bytes arrived, EOF or three seconds passed.
bool SendAll(int fd, const std::string& data);
std::string Receive(int fd, size_t n);

// Waits (bounded, three seconds) until `ip link show` in `netns` reports `ifname` UP.
bool WaitLinkUp(const std::string& netns_name, const std::string& ifname);

}  // namespace tern::nettest
