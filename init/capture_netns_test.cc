// Capture on a real kernel: every golden ruleset applies in a network namespace made by the
// test, applying twice changes nothing, removal leaves nothing, a failed transaction leaves the
// previous state; then tern-init itself, run in a "pod" namespace wired to a "peer" namespace by
// a veth pair, is proved by traffic: what must reach the proxy lands on its listeners with the
// intended original destination, and what must not goes straight out. IPv4 and IPv6.
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/fsuid.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "core/capture/applier.h"
#include "core/capture/nft_render.h"
#include "core/capture/plan.h"
#include "core/capture/plan_cases.h"

namespace tern::capture {
namespace {

std::string RunShell(const std::string& cmd, int* status = nullptr) {
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

void Sh(const std::string& cmd) {
  int rc = 0;
  std::string out = RunShell(cmd, &rc);
  ASSERT_EQ(rc, 0) << cmd << "\n" << out;
}

// A network namespace that lives as long as the object.
class Netns {
 public:
  explicit Netns(const std::string& suffix) : name_("tern-t" + std::to_string(getpid()) + "-" + suffix) {
    RunShell("ip netns del " + name_);
    Sh("ip netns add " + name_);
    Sh("ip -n " + name_ + " link set lo up");
  }
  ~Netns() { RunShell("ip netns del " + name_); }
  const std::string& name() const { return name_; }
  std::string path() const { return "/var/run/netns/" + name_; }
  std::string Exec(const std::string& cmd, int* status = nullptr) const {
    return RunShell("ip netns exec " + name_ + " " + cmd, status);
  }

 private:
  std::string name_;
};

class CaptureKernel : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to create network namespaces";
  }
};

TEST_F(CaptureKernel, EveryGoldenRulesetAppliesReplacesAndRemovesCleanly) {
  Netns ns("golden");
  auto applier = MakeKernelApplier(ns.path());
  for (const auto& c : PlanCases()) {
    SCOPED_TRACE(c.name);
    Ruleset rs = BuildPlan(c.config());
    ASSERT_TRUE(applier->Apply(rs).ok()) << applier->Apply(rs).message();
    auto first = applier->List(rs.table);
    ASSERT_TRUE(first.ok());
    EXPECT_NE(first->find("chain outbound"), std::string::npos) << *first;
    ASSERT_TRUE(applier->Apply(rs).ok());
    EXPECT_EQ(*applier->List(rs.table), *first) << "applying twice must replace, not duplicate";
    if (rs.tproxy_routing) {
      EXPECT_NE(ns.Exec("ip rule show").find("fwmark 0x539 lookup 133"), std::string::npos);
      EXPECT_NE(ns.Exec("ip route show table 133").find("local default dev lo"), std::string::npos);
      EXPECT_NE(ns.Exec("ip -6 route show table 133").find("local default dev lo"), std::string::npos);
    }
    ASSERT_TRUE(applier->Remove(rs).ok());
    EXPECT_EQ(*applier->List(rs.table), "");
    EXPECT_EQ(ns.Exec("nft list ruleset"), "") << "removal leaves the namespace as it was";
    EXPECT_EQ(ns.Exec("ip rule show").find("lookup 133"), std::string::npos);
    EXPECT_TRUE(applier->Remove(rs).ok()) << "removing twice is not an error";
  }
}

TEST_F(CaptureKernel, AFailedTransactionLeavesThePreviousStateWhole) {
  Netns ns("fail");
  auto applier = MakeKernelApplier(ns.path());
  Ruleset good = BuildPlan(CaptureConfig{});
  ASSERT_TRUE(applier->Apply(good).ok());
  std::string before = *applier->List(good.table);

  CaptureConfig tproxy;
  tproxy.mode = InterceptionMode::kTproxy;
  Ruleset bad = BuildPlan(tproxy);
  bad.chains[0].rules.push_back({{Match{Match::Field::kTcpDport, false, {"80"}}}, Verdict{Verdict::Kind::kJump, "nowhere"}, ""});
  Status s = applier->Apply(bad);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("nftables refused the ruleset"), std::string::npos) << s.message();
  EXPECT_EQ(*applier->List(good.table), before) << "the old table is untouched";
  EXPECT_EQ(ns.Exec("ip rule show").find("lookup 133"), std::string::npos) << "TPROXY routing rolled back";

  Status missing = MakeKernelApplier("/var/run/netns/does-not-exist")->Apply(good);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.message().find("does-not-exist"), std::string::npos);
}

// ---- Traffic through tern-init's capture ----

struct Endpoint {
  std::string ip;
  uint16_t port;
  bool operator==(const Endpoint&) const = default;
};

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

// A socket created inside `netns` as `uid`/`gid`: netfilter's skuid/skgid come from the file
// system ids of the creating thread, which setfsuid changes for that thread alone.
int SocketIn(const Netns& netns, int family, uid_t uid = 0, gid_t gid = 0) {
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

class Listener {
 public:
  Listener(const Netns& ns, const Endpoint& at, bool transparent = false) {
    int family = at.ip.find(':') != std::string::npos ? AF_INET6 : AF_INET;
    fd_ = SocketIn(ns, family);
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    // TPROXY delivers connections addressed elsewhere; only a transparent socket accepts them.
    if (transparent) {
      setsockopt(fd_, family == AF_INET6 ? SOL_IPV6 : SOL_IP, family == AF_INET6 ? IPV6_TRANSPARENT : IP_TRANSPARENT,
                 &one, sizeof one);
    }
    if (family == AF_INET6) setsockopt(fd_, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    socklen_t len;
    sockaddr_storage ss = Addr(at, &len);
    ok_ = bind(fd_, reinterpret_cast<sockaddr*>(&ss), len) == 0 && listen(fd_, 16) == 0;
  }
  ~Listener() { close(fd_); }
  bool ok() const { return ok_; }

  // The next connection within three seconds: its local address and its original destination.
  bool Accept(Endpoint* local, Endpoint* original) {
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

 private:
  int fd_ = -1;
  bool ok_ = false;
};

// Connects from `netns` as `uid`; true once the TCP handshake completed within three seconds.
bool Connect(const Netns& netns, const Endpoint& to, uid_t uid) {
  int family = to.ip.find(':') != std::string::npos ? AF_INET6 : AF_INET;
  int fd = SocketIn(netns, family, uid, uid);
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

class TernInitTraffic : public CaptureKernel {
 protected:
  void SetUp() override {
    CaptureKernel::SetUp();
    if (IsSkipped()) return;
    pod_ = std::make_unique<Netns>("pod");
    peer_ = std::make_unique<Netns>("peer");
    std::string veth = "tv" + std::to_string(getpid() % 100000);
    Sh("ip link add " + veth + "a netns " + pod_->name() + " type veth peer name " + veth + "b netns " + peer_->name());
    Sh("ip -n " + pod_->name() + " addr add 10.200.0.1/24 dev " + veth + "a");
    Sh("ip -n " + pod_->name() + " addr add fd00:200::1/64 dev " + veth + "a nodad");
    Sh("ip -n " + peer_->name() + " addr add 10.200.0.2/24 dev " + veth + "b");
    Sh("ip -n " + peer_->name() + " addr add 10.200.0.3/24 dev " + veth + "b");
    Sh("ip -n " + peer_->name() + " addr add fd00:200::2/64 dev " + veth + "b nodad");
    // The validation target: a documentation address, owned here by the peer namespace.
    Sh("ip -n " + peer_->name() + " addr add 192.0.2.1/32 dev " + veth + "b");
    Sh("ip -n " + pod_->name() + " link set " + veth + "a up");
    Sh("ip -n " + peer_->name() + " link set " + veth + "b up");
    Sh("ip -n " + pod_->name() + " route add default via 10.200.0.2");
    // Carrier comes up asynchronously; wait (bounded) so the first connections do not race it.
    for (int i = 0; i < 60; ++i) {
      if (RunShell("ip -n " + pod_->name() + " link show " + veth + "a").find("state UP") != std::string::npos &&
          RunShell("ip -n " + peer_->name() + " link show " + veth + "b").find("state UP") != std::string::npos) {
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  void Init(const std::string& flags) {
    Sh("ip netns exec " + pod_->name() + " " + std::string(TERN_BINARY_DIR) + "/init/tern-init " + flags);
  }
  std::unique_ptr<Netns> pod_, peer_;
};

TEST_F(TernInitTraffic, RedirectModeCapturesWhatItMustAndNothingElse) {
  // The flags the webhook injects, plus one excluded outbound port and range.
  Init("-p 15001 -z 15006 -u 1337 -g 1337 -m REDIRECT -i '*' -x 10.200.0.3/32 -b '*' -d 15090,15021,15020 -o 8081");
  Listener out4(*pod_, {"0.0.0.0", 15001}), out6(*pod_, {"::", 15001});
  Listener in4(*pod_, {"0.0.0.0", 15006}), in6(*pod_, {"::", 15006});
  Listener health(*pod_, {"0.0.0.0", 15021});
  Listener app80(*peer_, {"0.0.0.0", 80}), app8081(*peer_, {"0.0.0.0", 8081}), app6(*peer_, {"::", 80});
  for (Listener* l : {&out4, &out6, &in4, &in6, &health, &app80, &app8081, &app6}) ASSERT_TRUE(l->ok());
  Endpoint local, original;

  // An app's outbound call lands on the outbound listener, knowing where it was going.
  ASSERT_TRUE(Connect(*pod_, {"10.200.0.2", 80}, 1000));
  ASSERT_TRUE(out4.Accept(&local, &original));
  EXPECT_EQ(original, (Endpoint{"10.200.0.2", 80}));
  ASSERT_TRUE(Connect(*pod_, {"fd00:200::2", 80}, 1000));
  ASSERT_TRUE(out6.Accept(&local, &original));
  EXPECT_EQ(original, (Endpoint{"fd00:200::2", 80}));

  // The proxy's own uid goes straight out: no loop.
  ASSERT_TRUE(Connect(*pod_, {"10.200.0.2", 80}, 1337));
  ASSERT_TRUE(app80.Accept(&local, &original));
  EXPECT_EQ(local, (Endpoint{"10.200.0.2", 80}));
  ASSERT_TRUE(Connect(*pod_, {"fd00:200::2", 80}, 1337));
  ASSERT_TRUE(app6.Accept(&local, &original));

  // Excluded port and excluded range go straight out.
  ASSERT_TRUE(Connect(*pod_, {"10.200.0.2", 8081}, 1000));
  ASSERT_TRUE(app8081.Accept(&local, &original));
  ASSERT_TRUE(Connect(*pod_, {"10.200.0.3", 80}, 1000));
  ASSERT_TRUE(app80.Accept(&local, &original));
  EXPECT_EQ(local, (Endpoint{"10.200.0.3", 80}));

  // Inbound to an app port lands on the inbound listener; the proxy's health port does not.
  ASSERT_TRUE(Connect(*peer_, {"10.200.0.1", 9080}, 0));
  ASSERT_TRUE(in4.Accept(&local, &original));
  EXPECT_EQ(original, (Endpoint{"10.200.0.1", 9080}));
  ASSERT_TRUE(Connect(*peer_, {"fd00:200::1", 9080}, 0));
  ASSERT_TRUE(in6.Accept(&local, &original));
  EXPECT_EQ(original, (Endpoint{"fd00:200::1", 9080}));
  ASSERT_TRUE(Connect(*peer_, {"10.200.0.1", 15021}, 0));
  ASSERT_TRUE(health.Accept(&local, &original));
  EXPECT_EQ(local, (Endpoint{"10.200.0.1", 15021}));

  // Cleanup leaves the namespace's ruleset as it was.
  Init("--cleanup");
  EXPECT_EQ(pod_->Exec("nft list ruleset"), "");
}

TEST_F(TernInitTraffic, TproxyModeDeliversInboundToATransparentListener) {
  Init("-p 15001 -z 15006 -u 1337 -g 1337 -m TPROXY -i '*' -x '' -b '*' -d 15090,15021,15020");
  Listener in4(*pod_, {"0.0.0.0", 15006}, true), in6(*pod_, {"::", 15006}, true);
  Listener out4(*pod_, {"0.0.0.0", 15001});
  Listener health(*pod_, {"0.0.0.0", 15021});
  for (Listener* l : {&in4, &in6, &out4, &health}) ASSERT_TRUE(l->ok());
  Endpoint local, original;

  // With TPROXY the connection keeps its destination: the accepted socket's own address is it.
  ASSERT_TRUE(Connect(*peer_, {"10.200.0.1", 9080}, 0));
  ASSERT_TRUE(in4.Accept(&local, &original));
  EXPECT_EQ(local, (Endpoint{"10.200.0.1", 9080}));
  ASSERT_TRUE(Connect(*peer_, {"fd00:200::1", 9080}, 0));
  ASSERT_TRUE(in6.Accept(&local, &original));
  EXPECT_EQ(local, (Endpoint{"fd00:200::1", 9080}));
  // The proxy's own ports are not diverted; outbound still goes to 15001.
  ASSERT_TRUE(Connect(*peer_, {"10.200.0.1", 15021}, 0));
  ASSERT_TRUE(health.Accept(&local, &original));
  ASSERT_TRUE(Connect(*pod_, {"10.200.0.2", 80}, 1000));
  ASSERT_TRUE(out4.Accept(&local, &original));
  EXPECT_EQ(original, (Endpoint{"10.200.0.2", 80}));

  Init("-m TPROXY --cleanup");
  EXPECT_EQ(pod_->Exec("nft list ruleset"), "");
  EXPECT_EQ(pod_->Exec("ip rule show").find("lookup 133"), std::string::npos);
}

TEST_F(TernInitTraffic, RunValidationProvesCaptureAndFailsWithoutIt) {
  std::string flags = " -p 15001 -z 15006 -u 1337 -g 1337 -m REDIRECT -i '*' -x '' -b '*' -d 15090,15021,15020";
  Init(flags);
  std::string tern_init = std::string(TERN_BINARY_DIR) + "/init/tern-init";
  // As the CNI-mode init step runs it: unprivileged, uid 1338.
  std::string as_app = "setpriv --reuid 1338 --regid 1338 --clear-groups " + tern_init;
  int rc = -1;
  std::string out = pod_->Exec(as_app + flags + " --run-validation --validation-timeout 3000", &rc);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("traffic capture validated"), std::string::npos) << out;

  out = pod_->Exec("setpriv --reuid 1337 --regid 1337 --clear-groups " + tern_init + flags + " --run-validation", &rc);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("must run as a uid other than the proxy's"), std::string::npos) << out;

  Init("--cleanup");
  out = pod_->Exec(as_app + flags + " --run-validation --validation-timeout 1000", &rc);
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(out.find("traffic capture is not in place: a connection to 192.0.2.1:15002 did not reach"),
            std::string::npos)
      << out;
}

TEST_F(TernInitTraffic, BadFlagsInstallNothing) {
  int rc = 0;
  std::string out = pod_->Exec(std::string(TERN_BINARY_DIR) + "/init/tern-init -m REDIRECT -d 70000", &rc);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("-d/--istio-local-exclude-ports: port 70000 is out of range"), std::string::npos) << out;
  EXPECT_EQ(pod_->Exec("nft list ruleset"), "");
}

}  // namespace
}  // namespace tern::capture
