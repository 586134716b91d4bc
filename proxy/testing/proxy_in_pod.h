// The fixture of tern-proxy's netns tests: a "pod" namespace wired to a "peer", the capture
// rules installed by the real tern-init, the real tern-proxy running as uid 1337 from a snapshot
// file, and helpers to play the app, a backend and a client.
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/base/ascii.h"
#include "core/base/files.h"
#include "core/capture/testing/netns_traffic.h"
#include "core/capture/testing/sh.h"
#include "core/testing/subprocess.h"

namespace tern::proxy::testing_support {

using namespace std::chrono_literals;
using nettest::Endpoint;
using nettest::Listener;
using tern::testing_support::Spawn;
using tern::testing_support::Stop;
using tern::testing_support::WaitExit;

inline const std::string kBin = TERN_BINARY_DIR;

// A snapshot with one service `name` in my-app at `cluster_ip`, one port, one endpoint at
// `address` (listening on `target_port`, or on `port` when 0).
inline std::string OneServiceSnapshot(const std::string& version, const std::string& policy, const std::string& name,
                                      const std::string& cluster_ip, const std::string& port_name, int port,
                                      const std::string& address, int target_port = 0) {
  std::string host = name + ".my-app.svc.cluster.local";
  std::string target = std::to_string(target_port ? target_port : port);
  return "apiVersion: tern.dev/v1alpha1\nkind: ProxySnapshot\nversion: \"" + version + "\"\n"
         "mesh: {outboundTrafficPolicy: " + policy + "}\n"
         "workload: {name: app-1, namespace: my-app, labels: {app: app}}\n"
         "services:\n"
         "- hostname: " + host + "\n"
         "  clusterIPs: [" + cluster_ip + "]\n"
         "  ports: [{name: " + port_name + ", port: " + std::to_string(port) + ", targetPort: " + target + "}]\n"
         "endpoints:\n"
         "- {service: " + host + ", address: " + address + ", ports: {" + port_name + ": " + target + "}}\n";
}

// db (TCP) at 10.96.0.20:8080, its endpoint at `endpoint`:8080.
inline std::string Snapshot(const std::string& version, const std::string& endpoint, const std::string& policy) {
  return OneServiceSnapshot(version, policy, "db", "10.96.0.20", "tcp-db", 8080, endpoint);
}

// What a scripted backend does with its n-th request (0-based, over all its connections).
struct Reply {
  int status = 200;
  std::chrono::milliseconds delay{0};  // before answering (ends early when the backend is destroyed)
  bool reset = false;                  // no answer: the connection is reset (RST)
  bool break_mid_body = false;         // the header and half the body, then a reset
  bool garbage = false;                // answers bytes that are no HTTP, then closes
  bool close_after_headers = false;    // the header (its Content-Length promising a body), then FIN
  // HTTP/2 backends only (H2FaultBackend):
  bool goaway_mid_body = false;       // the header and half the body, then GOAWAY naming this stream and FIN
  bool goaway_before_answer = false;  // GOAWAY naming an earlier stream (this one was not processed), then FIN
};
using Script = std::function<Reply(int n, const std::string& request_line)>;

// A tiny HTTP/1.1 backend on the peer: answers every request on a connection (keep-alive) with
// its name and the request line, until the client closes or the backend is destroyed (the
// proxy keeps idle connections: reads wait in slices and give up once the test is over).
// A Script makes it fail, stall or reset chosen requests. One thread per connection, bounded
// by the test's own requests.
class Backend {
 public:
  Backend(const nettest::Netns& ns, const Endpoint& at, std::string name, Script script = nullptr)
      : listener_(ns, at), name_(std::move(name)), script_(std::move(script)) {
    thread_ = std::thread([this] { Serve(); });
  }
  ~Backend() {
    done_ = true;
    thread_.join();
    for (auto& t : conns_) t.join();
  }
  bool ok() const { return listener_.ok(); }
  // Asks it to stop without waiting (its accept waits up to 3 s): many backends stopped first
  // are then destroyed in one such wait, not one after another.
  void Stop() { done_ = true; }
  // Every request's header block, in arrival order.
  std::vector<std::string> seen() const {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_;
  }
  int requests() const { return requests_; }
  int connections() const { return connections_; }
  int most_in_flight() const { return most_in_flight_; }  // requests being answered at once, at most

 private:
  // recv, in 100 ms slices while the backend lives.
  ssize_t Receive(int fd, char* buf, size_t size) {
    while (!done_) {
      pollfd p{fd, POLLIN, 0};
      int r = poll(&p, 1, 100);
      if (r < 0) return -1;
      if (r > 0) return recv(fd, buf, size, 0);
    }
    return -1;
  }
  void Sleep(std::chrono::milliseconds d) {
    auto until = std::chrono::steady_clock::now() + d;
    while (!done_ && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(5ms);
  }
  static void Reset(int fd) {
    linger l{1, 0};  // close() sends RST
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
  }

  void Serve() {
    while (!done_) {
      Endpoint local, peer;
      int fd = listener_.AcceptConnection(&local, &peer);  // waits at most three seconds
      if (fd < 0) continue;
      ++connections_;
      conns_.emplace_back([this, fd] {
        std::string buf;
        char chunk[4096];
        for (;;) {
          size_t end;
          while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
            ssize_t n = Receive(fd, chunk, sizeof chunk);
            if (n <= 0) {
              close(fd);
              return;
            }
            buf.append(chunk, static_cast<size_t>(n));
          }
          std::string request_line = buf.substr(0, buf.find("\r\n"));
          std::string headers = buf.substr(0, end);
          buf.erase(0, end + 4);
          {
            std::lock_guard<std::mutex> lock(mu_);
            seen_.push_back(headers);
          }
          // A request body (by Content-Length, or chunked) is read whole and counted.
          std::string lower = AsciiLower(headers);
          auto more = [&] {
            ssize_t n = Receive(fd, chunk, sizeof chunk);
            if (n > 0) buf.append(chunk, static_cast<size_t>(n));
            return n > 0;
          };
          size_t received = 0;
          if (size_t cl = lower.find("content-length: "); cl != std::string::npos) {
            size_t want = std::stoul(lower.substr(cl + 16));
            while (buf.size() < want && more()) {
            }
            received = std::min(want, buf.size());
            buf.erase(0, received);
          } else if (lower.find("transfer-encoding: chunked") != std::string::npos) {
            for (int guard = 0; guard < 100000; ++guard) {
              size_t eol;
              while ((eol = buf.find("\r\n")) == std::string::npos && more()) {
              }
              if (eol == std::string::npos) break;
              size_t size = std::stoul(buf.substr(0, eol), nullptr, 16);
              while (buf.size() < eol + 2 + size + 2 && more()) {
              }
              buf.erase(0, std::min(buf.size(), eol + 2 + size + 2));  // a last chunk's CRLF ends the message
              received += size;
              if (size == 0) break;
            }
          }
          Reply reply = script_ ? script_(requests_++, request_line) : (requests_++, Reply{});
          int now = ++in_flight_;
          for (int most = most_in_flight_; now > most && !most_in_flight_.compare_exchange_weak(most, now);) {
          }
          Sleep(reply.delay);
          --in_flight_;
          if (reply.reset || done_) {
            Reset(fd);
            return;
          }
          std::string body = name_ + " " + request_line;
          if (headers.find("x-mesh: tern") != std::string::npos) body += " x-mesh";
          if (received) body += " received " + std::to_string(received);
          if (request_line.find("/big ") != std::string::npos) body += std::string(300000, 'b');
          if (request_line.find(" /headers ") != std::string::npos) body += "\n" + headers;
          std::string res = "HTTP/1.1 " + std::to_string(reply.status) + " Scripted\r\nContent-Length: " +
                            std::to_string(body.size()) + "\r\nx-backend: " + name_ + "\r\n\r\n" + body;
          if (reply.garbage) {
            nettest::SendAll(fd, "SSH-2.0-OpenSSH_9.2 this is no HTTP\r\n\r\n");
            close(fd);
            return;
          }
          if (reply.close_after_headers) {
            nettest::SendAll(fd, res.substr(0, res.size() - body.size()));
            close(fd);
            return;
          }
          if (reply.break_mid_body) {
            nettest::SendAll(fd, res.substr(0, res.size() - body.size() / 2));
            Sleep(200ms);  // a reset discards what the peer has not read yet: let the header arrive first
            Reset(fd);
            return;
          }
          if (!nettest::SendAll(fd, res)) {
            close(fd);
            return;
          }
        }
      });
    }
  }
  Listener listener_;
  std::string name_;
  Script script_;
  std::atomic<int> requests_{0}, connections_{0}, in_flight_{0}, most_in_flight_{0};
  mutable std::mutex mu_;
  std::vector<std::string> seen_;
  std::atomic<bool> done_{false};
  std::thread thread_;
  std::vector<std::thread> conns_;
};

// Reads `fd` until the peer ends the stream (or resets it), `done(received)` holds, or `limit`
// passes. `ended`, when given: whether the end of the stream was seen.
inline std::string ReceiveUntil(int fd, std::chrono::milliseconds limit, bool* ended = nullptr,
                                const std::function<bool(const std::string&)>& done = nullptr) {
  std::string got;
  if (ended) *ended = false;
  for (auto end = std::chrono::steady_clock::now() + limit;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) != 1) break;
    char buf[65536];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      if (ended) *ended = true;
      break;
    }
    got.append(buf, static_cast<size_t>(n));
    if (done && done(got)) break;
  }
  return got;
}

// How many times `what` occurs in `text` (access-log lines, flags).
inline int Count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// Sends one HTTP/1.1 request on `fd` and returns the whole response: the header as sent, then the
// body (by Content-Length, or chunked and decoded).
inline std::string Exchange(int fd, const std::string& request) {
  if (!nettest::SendAll(fd, request)) return "";
  std::string out;
  for (int i = 0; i < 70000; ++i) {  // byte by byte up to the header's end: the limit is 64 KiB
    std::string more = nettest::Receive(fd, 1);
    if (more.empty()) break;
    out += more;
    size_t end = out.find("\r\n\r\n");
    if (end == std::string::npos) continue;
    std::string lower = AsciiLower(out.substr(0, end));
    size_t cl = lower.find("content-length: ");
    if (cl != std::string::npos) {
      size_t length = std::stoul(lower.substr(cl + 16));
      if (out.size() < end + 4 + length) out += nettest::Receive(fd, end + 4 + length - out.size());
    } else if (lower.find("transfer-encoding: chunked") != std::string::npos) {
      // Read to the last chunk and keep the decoded body (bounded by the loop).
      std::string raw, body;
      for (int guard = 0; guard < 100000; ++guard) {
        size_t eol;
        while ((eol = raw.find("\r\n")) == std::string::npos) {
          std::string got = nettest::Receive(fd, 1);
          if (got.empty()) return out + body;
          raw += got;
        }
        size_t size = std::stoul(raw.substr(0, eol), nullptr, 16);
        if (raw.size() < eol + 2 + size + 2) raw += nettest::Receive(fd, eol + 2 + size + 2 - raw.size());
        body += raw.substr(eol + 2, size);
        raw.clear();
        if (size == 0) break;
      }
      out += body;
    }
    break;
  }
  return out;
}

class ProxyInPod : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to create network namespaces";
    net_ = std::make_unique<nettest::PodAndPeer>("px");
    ASSERT_EQ(net_->error(), "");
    char tmpl[] = "/tmp/tern-proxy-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
    chmod(dir_.c_str(), 0755);
    ASSERT_TRUE(WriteFileAtomically(dir_ + "/snapshot.yaml", Snapshot("1", "10.200.0.2", "ALLOW_ANY")).ok());
    ASSERT_TRUE(nettest::Sh("ip netns exec " + net_->pod.name() + " " + kBin +
                            "/init/tern-init -p 15001 -z 15006 -u 1337 -g 1337 -m REDIRECT -i '*' -x '' -b '*' "
                            "-d 15090,15021,15020"));
    // The sidecar as injected: uid/gid 1337, its own ports.
    std::vector<std::string> argv = {"/usr/bin/env", "ip", "netns", "exec", net_->pod.name(), "setpriv", "--reuid",
                                      "1337", "--regid", "1337", "--clear-groups", kBin + "/proxy/tern-proxy",
                                      "--config", dir_ + "/snapshot.yaml", "--concurrency", "2"};
    for (const auto& a : ExtraArgs()) argv.push_back(a);
    if (!PodAnnotations().empty()) {  // as the downward API mounts them
      ASSERT_TRUE(WriteFileAtomically(dir_ + "/annotations", PodAnnotations()).ok());
      argv.insert(argv.end(), {"--pod-annotations", dir_ + "/annotations"});
    }
    std::map<std::string, std::string> env = ExtraEnv();
    env["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin";
    proxy_ = Spawn(argv, env, dir_ + "/proxy.log");
    ASSERT_GT(proxy_, 0);
    ASSERT_TRUE(WaitFor([&] { return Admin("GET /ready").find("LIVE") != std::string::npos; })) << Log();
  }
  // The pod's annotations file (`key="value"` lines); none when empty.
  virtual std::string PodAnnotations() const { return ""; }
  // More tern-proxy flags.
  virtual std::vector<std::string> ExtraArgs() const { return {}; }
  // More environment for tern-proxy.
  virtual std::map<std::string, std::string> ExtraEnv() const { return {}; }
  void TearDown() override {
    Stop(proxy_);
    if (!dir_.empty()) std::system(("rm -rf " + dir_).c_str());
  }

  // One request to the admin port from inside the pod (localhost is never captured).
  std::string Admin(const std::string& request_line) {
    int fd = nettest::ConnectSocket(net_->pod, {"127.0.0.1", 15000}, 0);
    if (fd < 0) return "";
    nettest::SendAll(fd, request_line + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    std::string out = nettest::Receive(fd, 1 << 20);
    close(fd);
    return out;
  }
  template <class F>
  static bool WaitFor(F done) {
    for (int i = 0; i < 100; ++i) {
      if (done()) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }
  std::string Log() const { return *ReadFile(dir_ + "/proxy.log"); }

  // app (uid 1000) -> `to`, then a round trip of bytes with whoever accepts on `server`.
  void RoundTrip(const Endpoint& to, Listener& server, Endpoint* accepted_at, Endpoint* accepted_from) {
    int app = nettest::ConnectSocket(net_->pod, to, 1000);
    ASSERT_GE(app, 0);
    int srv = server.AcceptConnection(accepted_at, accepted_from);
    ASSERT_GE(srv, 0) << Log();
    ASSERT_TRUE(nettest::SendAll(app, "ping from the app"));
    EXPECT_EQ(nettest::Receive(srv, 17), "ping from the app");
    ASSERT_TRUE(nettest::SendAll(srv, "pong"));
    EXPECT_EQ(nettest::Receive(app, 4), "pong");
    close(app);
    EXPECT_EQ(nettest::Receive(srv, 1), "") << "the app's close reaches the server";
    close(srv);
  }

  std::unique_ptr<nettest::PodAndPeer> net_;
  std::string dir_;
  pid_t proxy_ = -1;
};

// The seed's product-service: its VirtualService and DestinationRule verbatim (from
// core/config/testdata/seed.yaml), v1 and v2 endpoints on the peer.
// `sidecars`: the endpoints carry security.istio.io/tlsMode=istio (they run a sidecar, so
// h2UpgradePolicy UPGRADE applies to them).
inline std::string ProductSnapshot(const std::string& version, const std::string& policy, const std::string& resources,
                                   bool sidecars = false) {
  std::string mesh = sidecars ? ", security.istio.io/tlsMode: istio" : "";
  return "apiVersion: tern.dev/v1alpha1\nkind: ProxySnapshot\nversion: " + version + "\n"
         "mesh: {outboundTrafficPolicy: " + policy + "}\n"
         "workload: {name: web-1, namespace: my-app, labels: {app: web}}\n"
         "services:\n"
         "- hostname: product-service.my-app.svc.cluster.local\n"
         "  clusterIPs: [10.96.0.20]\n"
         "  ports: [{name: http, port: 8080}]\n"
         "endpoints:\n"
         "- {service: product-service.my-app.svc.cluster.local, address: 10.200.0.2, ports: {http: 8080}, labels: {version: v1" + mesh + "}}\n"
         "- {service: product-service.my-app.svc.cluster.local, address: 10.200.0.3, ports: {http: 8080}, labels: {version: v2" + mesh + "}}\n" +
         resources;
}

// product-service's resources: one VirtualService route to v1 (or `destination`; `route_extra`:
// more of the route's fields, each line indented as the route's) and a DestinationRule with
// subsets v1, v2 (`policy`: its trafficPolicy in flow style, or empty).
inline std::string ProductResources(const std::string& route_extra, const std::string& policy,
                                    const std::string& destination = "{host: product-service, subset: v1}") {
  return "resources:\n"
         "- apiVersion: networking.istio.io/v1beta1\n"
         "  kind: VirtualService\n"
         "  metadata: {name: product-service, namespace: my-app}\n"
         "  spec:\n"
         "    hosts: [product-service]\n"
         "    http:\n"
         "    - route:\n"
         "      - destination: " + destination + "\n" +
         route_extra +
         "- apiVersion: networking.istio.io/v1beta1\n"
         "  kind: DestinationRule\n"
         "  metadata: {name: product-service, namespace: my-app}\n"
         "  spec:\n"
         "    host: product-service\n" +
         (policy.empty() ? "" : "    trafficPolicy: " + policy + "\n") +
         "    subsets:\n"
         "    - {name: v1, labels: {version: v1}}\n"
         "    - {name: v2, labels: {version: v2}}\n";
}

// product-service with one route to v1 that waits at most 1 s for an answer.
inline std::string TimeoutSnapshot(bool sidecars = false) {
  return ProductSnapshot("timeout", "ALLOW_ANY",
                         ProductResources("      timeout: 1s\n", "{connectionPool: {http: {h2UpgradePolicy: UPGRADE}}}"), sidecars);
}

// product-service routed to v1, half of its requests mirrored to v2.
inline std::string MirrorSnapshot() {
  return ProductSnapshot("mirror", "ALLOW_ANY",
                         ProductResources("      mirror: {host: product-service, subset: v2}\n      mirrorPercentage: {value: 50}\n", ""));
}

inline std::string SeedSnapshot(bool sidecars = false) {
  std::string seed = *ReadFile(std::string(TERN_SOURCE_DIR) + "/core/config/testdata/seed.yaml");
  return ProductSnapshot("seed", "ALLOW_ANY", seed.substr(seed.find("resources:")), sidecars);
}

// Loads `snapshot` and waits until the admin port shows `version`.
#define LOAD_SNAPSHOT(snapshot, version)                                                                       \
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/snapshot.yaml", snapshot).ok());                                    \
  ASSERT_TRUE(WaitFor([&] { return Admin("GET /config_dump").find("\"version\": \"" version "\"") != std::string::npos; })) \
      << Log()


}  // namespace tern::proxy::testing_support
