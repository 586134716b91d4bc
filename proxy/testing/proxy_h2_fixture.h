// What tern-proxy's HTTP/2 netns tests share (proxy_h2_test.cc: protocol, translation and
// hostile clients; proxy_h2_resilience_test.cc: retries, timeouts, pools, WebSockets): nghttpd
// backends on the peer, a frame-by-frame client, and the ProxyH2 fixture (the proxy in a pod
// under the seed's routes). Test-only.
#pragma once

#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/base/files.h"
#include "core/capture/testing/netns_traffic.h"
#include "core/testing/subprocess.h"
#include "proxy/testing/proxy_in_pod.h"
#include "proxy/testing/raw_h2_client.h"

namespace tern::proxy::h2test {

using namespace std::chrono_literals;
using nettest::Endpoint;
using nettest::Listener;
using testing_support::Count;
using testing_support::OneServiceSnapshot;
using testing_support::ProductSnapshot;
using testing_support::ProxyInPod;
using testing_support::RawH2Client;
using testing_support::ReceiveUntil;
using testing_support::SeedSnapshot;
using tern::testing_support::Spawn;
using tern::testing_support::Stop;

inline const std::map<std::string, std::string> kEnv = {{"PATH", "/usr/sbin:/usr/bin:/sbin:/bin"}};

// Runs `argv` in `ns` as `uid` (0: root) and returns what it printed.
inline tern::testing_support::ProcessResult RunIn(const nettest::Netns& ns, int uid, std::vector<std::string> argv,
                                     std::chrono::milliseconds deadline = 20000ms) {
  std::vector<std::string> full = {"/usr/bin/env", "ip", "netns", "exec", ns.name()};
  if (uid) {
    std::string id = std::to_string(uid);
    full.insert(full.end(), {"setpriv", "--reuid", id, "--regid", id, "--clear-groups"});
  }
  full.insert(full.end(), argv.begin(), argv.end());
  return tern::testing_support::RunProcess(full, kEnv, "", deadline);
}

// An HTTP/2 backend on the peer: nghttpd serving `name` at /who and 1 MiB at /big, echoing
// uploads.
class H2Backend {
 public:
  H2Backend(const nettest::Netns& ns, const std::string& dir, const std::string& address, const std::string& name)
      : docs_(dir + "/" + name) {
    std::system(("mkdir -p " + docs_).c_str());
    EXPECT_TRUE(WriteFileAtomically(docs_ + "/who", name).ok());
    EXPECT_TRUE(WriteFileAtomically(docs_ + "/big", std::string(1 << 20, 'b')).ok());
    pid_ = tern::testing_support::Spawn({"/usr/bin/env", "ip", "netns", "exec", ns.name(), "nghttpd", "--no-tls", "--echo-upload",
                                   "-a", address, "-d", docs_, "8080"},
                                  kEnv, dir + "/" + name + ".log");
  }
  ~H2Backend() { tern::testing_support::Stop(pid_); }

 private:
  std::string docs_;
  pid_t pid_ = -1;
};

inline std::vector<std::pair<std::string, std::string>> Get(const std::string& path, const std::string& authority = "product-service:8080") {
  return {{":method", "GET"}, {":scheme", "http"}, {":authority", authority}, {":path", path}};
}

// An HTTP/2 frame header + payload.
inline std::string Frame(uint8_t type, uint8_t flags, uint32_t stream, const std::string& payload) {
  std::string f;
  f.push_back(static_cast<char>(payload.size() >> 16));
  f.push_back(static_cast<char>(payload.size() >> 8));
  f.push_back(static_cast<char>(payload.size()));
  f.push_back(static_cast<char>(type));
  f.push_back(static_cast<char>(flags));
  for (int shift : {24, 16, 8, 0}) f.push_back(static_cast<char>(stream >> shift));
  return f + payload;
}

// HPACK "literal header field without indexing, new name", lengths under 127 or encoded.
inline std::string Literal(const std::string& name, const std::string& value) {
  auto length = [](size_t n) {
    std::string out;
    if (n < 127) return std::string(1, static_cast<char>(n));
    out.push_back(127);
    n -= 127;
    while (n >= 128) {
      out.push_back(static_cast<char>((n & 0x7f) | 0x80));
      n >>= 7;
    }
    out.push_back(static_cast<char>(n));
    return out;
  };
  return std::string(1, '\0') + length(name.size()) + name + length(value.size()) + value;
}

// A client written frame by frame, for what even an unchecked nghttp2 session will not send
// (streams past the peer's limit, windows pushed to overflow). It acknowledges every SETTINGS
// and notes RST_STREAM and GOAWAY.
struct FrameByFrameClient {
  explicit FrameByFrameClient(int socket) : fd(socket) {}
  ~FrameByFrameClient() { close(fd); }
  FrameByFrameClient(const FrameByFrameClient&) = delete;
  FrameByFrameClient& operator=(const FrameByFrameClient&) = delete;
  // HEADERS for GET /who on `stream` (:method GET, :scheme http, :path and :authority literal).
  static std::string GetWho(uint32_t stream) {
    return Frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_STREAM | NGHTTP2_FLAG_END_HEADERS, stream,
                 "\x82\x86" + Literal(":path", "/who") + Literal(":authority", "product-service:8080"));
  }
  bool Send(const std::string& bytes) const { return nettest::SendAll(fd, bytes); }
  // Sends the preface and an empty SETTINGS, and waits until the proxy's SETTINGS are acknowledged.
  bool Start() {
    if (!Send(std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") + Frame(NGHTTP2_SETTINGS, 0, 0, ""))) return false;
    ReadFor(2000ms, [&] { return settings_acked >= 1; });
    ReadFor(200ms, [] { return false; });  // every SETTINGS acknowledged
    return settings_acked >= 1;
  }
  void ReadFor(std::chrono::milliseconds d, const std::function<bool()>& done) {
    auto end = std::chrono::steady_clock::now() + d;
    while (!done() && std::chrono::steady_clock::now() < end) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 20) != 1) continue;
      char buf[16384];
      ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return;
      in.append(buf, static_cast<size_t>(n));
      while (in.size() >= 9) {
        size_t length = static_cast<uint8_t>(in[0]) << 16 | static_cast<uint8_t>(in[1]) << 8 | static_cast<uint8_t>(in[2]);
        if (in.size() < 9 + length) break;
        const auto type = static_cast<uint8_t>(in[3]), flags = static_cast<uint8_t>(in[4]);
        auto u32 = [&](size_t at) {
          return static_cast<uint32_t>(static_cast<uint8_t>(in[at])) << 24 | static_cast<uint32_t>(static_cast<uint8_t>(in[at + 1])) << 16 |
                 static_cast<uint32_t>(static_cast<uint8_t>(in[at + 2])) << 8 | static_cast<uint8_t>(in[at + 3]);
        };
        const uint32_t stream = u32(5) & 0x7fffffff;
        if (type == NGHTTP2_SETTINGS && !(flags & NGHTTP2_FLAG_ACK)) {
          Send(Frame(NGHTTP2_SETTINGS, NGHTTP2_FLAG_ACK, 0, ""));
          ++settings_acked;
        }
        if (type == NGHTTP2_RST_STREAM) resets[stream] = u32(9);
        if (type == NGHTTP2_GOAWAY) goaway = static_cast<int>(u32(13));
        in.erase(0, 9 + length);
      }
    }
  }

  int fd;
  std::string in;
  std::map<uint32_t, uint32_t> resets;
  int goaway = -1, settings_acked = 0;
};

inline std::string U32(uint32_t v) { return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)}; }

class ProxyH2 : public ProxyInPod {
 protected:
  // The seed's endpoints run sidecars here: its h2UpgradePolicy UPGRADE makes their upstream
  // HTTP/2 (the nghttpd backends speak nothing else).
  void LoadSeed() { LOAD_SNAPSHOT(SeedSnapshot(true), "seed"); }
  int ConnectApp() { return nettest::ConnectSocket(net_->pod, {"10.96.0.20", 8080}, 1000); }
  // A frame-by-frame client on a new connection to the seed's service, SETTINGS exchanged.
  std::unique_ptr<FrameByFrameClient> FrameByFrame() {
    int fd = ConnectApp();
    if (fd < 0) return nullptr;
    auto c = std::make_unique<FrameByFrameClient>(fd);
    if (!c->Start()) return nullptr;
    return c;
  }
  // nghttp through the proxy to HTTP/1.1-only backends: routes, bodies both ways, shared upstreams.
  void ExpectHttp2ReachesHttp1Backends();
  // After a hostile client was dealt with, a new client is served (the seed splits 90/10: both
  // subsets are up).
  void ExpectOthersAreServed() {
    H2Backend v1(net_->peer, dir_, "10.200.0.2", "v1"), v2(net_->peer, dir_, "10.200.0.3", "v2");
    std::this_thread::sleep_for(300ms);
    RawH2Client next(ConnectApp());
    int32_t id = next.Request(Get("/who"));
    ASSERT_TRUE(next.Pump([&] { return next.Closed(id); })) << Log();
    EXPECT_EQ(next.status[id], "200");
  }
};

}  // namespace tern::proxy::h2test
