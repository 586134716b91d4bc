// The sidecar contract: what the injector writes is what tern-proxy runs. For every case of the
// injection corpus the injected istio-proxy container is started as the kubelet would start it
// (its args with $(VAR) expanded, its env with fieldRef and resourceFieldRef resolved, its uid,
// gid and added capabilities, the downward API's annotations file and its volumes, under a
// temporary root), in a network namespace of its own where the pod's IP lives, and must:
//   - start, and answer /healthz/ready on 15021 and on its status port: 503 while it has no
//     snapshot, 200 once it has one (here the snapshot it keeps in its data volume, loaded on a
//     restart, as after a control-plane outage);
//   - answer every rewritten probe path of ISTIO_KUBE_APP_PROBERS by running the original check
//     against the app: 500 while the app is down, then the app's own answer (its status code for
//     httpGet, with the probe's headers and scheme; SERVING for grpc; a connection for tcpSocket);
//   - (classic layout) have its postStart command, `tern-proxy wait`, return once ready.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <cmath>
#include <set>
#include <thread>

#include "core/base/files.h"
#include "core/capture/testing/netns_traffic.h"
#include "core/kube/quantity.h"
#include "core/testing/subprocess.h"
#include "core/tls/x509.h"
#include "webhook/admission_review_builder.h"
#include "webhook/injection_corpus.h"
#include "webhook/injector.h"

namespace tern::proxy {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing_support::Spawn;
using testing_support::Stop;

const std::string kBin = TERN_BINARY_DIR;
constexpr const char* kPodIp = "10.250.0.9";
constexpr const char* kHostIp = "10.250.0.1";

// What a kubelet would give the container for `env` (value, fieldRef, resourceFieldRef).
std::map<std::string, std::string> ResolveEnv(const json& container, const json& pod, std::vector<std::string>* unknown) {
  std::map<std::string, std::string> out;
  const json env = container.value("env", json::array());
  for (const auto& e : env) {
    std::string name = e["name"];
    if (e.contains("value")) {
      out[name] = e["value"].get<std::string>();
      continue;
    }
    const json& from = e["valueFrom"];
    if (from.contains("fieldRef")) {
      std::string path = from["fieldRef"]["fieldPath"];
      if (path == "metadata.name") out[name] = pod["metadata"].value("name", "contract-pod");
      else if (path == "metadata.namespace") out[name] = pod["metadata"].value("namespace", "contract");
      else if (path == "status.podIP") out[name] = kPodIp;
      else if (path == "status.hostIP") out[name] = kHostIp;
      else if (path == "spec.serviceAccountName") out[name] = pod["spec"].value("serviceAccountName", "default");
      else if (path == "spec.nodeName") out[name] = "node-1";
      else unknown->push_back(name + ": fieldRef " + path);
    } else if (from.contains("resourceFieldRef")) {
      // No limit: the node's allocatable (2 CPUs, 8 GiB here); a CPU limit rounds up to cores.
      std::string resource = from["resourceFieldRef"]["resource"];
      const json limits = container.contains("resources") ? container["resources"].value("limits", json::object()) : json::object();
      auto limit = [&](const char* key) -> Result<double> {
        if (!limits.contains(key)) return Status::Error("no limit");
        return ParseQuantity(limits[key].is_string() ? limits[key].get<std::string>() : limits[key].dump());
      };
      if (resource == "limits.cpu") {
        auto q = limit("cpu");
        out[name] = q.ok() ? std::to_string(static_cast<long>(std::ceil(*q))) : "2";
      } else if (resource == "limits.memory") {
        auto q = limit("memory");
        out[name] = q.ok() ? std::to_string(static_cast<long long>(*q)) : "8589934592";
      } else {
        unknown->push_back(name + ": resourceFieldRef " + resource);
      }
    } else {
      unknown->push_back(name + ": valueFrom " + from.dump());
    }
  }
  return out;
}

// $(VAR) in args, as the kubelet expands it ($$ is a literal $; an unknown name stays as written).
std::string Expand(const std::string& arg, const std::map<std::string, std::string>& env) {
  std::string out;
  for (size_t i = 0; i < arg.size(); ++i) {
    if (arg[i] == '$' && i + 1 < arg.size() && arg[i + 1] == '$') {
      out += '$';
      ++i;
    } else if (arg[i] == '$' && i + 1 < arg.size() && arg[i + 1] == '(' && arg.find(')', i) != std::string::npos) {
      size_t close = arg.find(')', i);
      std::string name = arg.substr(i + 2, close - i - 2);
      auto it = env.find(name);
      out += it == env.end() ? arg.substr(i, close - i + 1) : it->second;
      i = close;
    } else {
      out += arg[i];
    }
  }
  return out;
}

// The downward API's annotations file: key="value" lines, the value quoted as Go's %q does.
std::string DownwardAnnotations(const json& pod) {
  std::string out;
  const json annotations = pod["metadata"].value("annotations", json::object());
  for (const auto& [key, value] : annotations.items()) {
    out += key + "=" + json(value.get<std::string>()).dump() + "\n";
  }
  return out;
}

// j[k1][k2]..., null when any is missing.
const json& At(const json& j, std::initializer_list<const char*> keys) {
  static const json kNull;
  const json* at = &j;
  for (const char* k : keys) {
    if (!at->is_object() || !at->contains(k)) return kNull;
    at = &(*at)[k];
  }
  return *at;
}

const json* FindProxy(const json& pod) {
  for (const char* list : {"initContainers", "containers"}) {
    if (!pod["spec"].contains(list)) continue;
    for (const auto& c : pod["spec"][list]) {
      if (c["name"] == "istio-proxy") return &c;
    }
  }
  return nullptr;
}

std::string Get(const nettest::Netns& ns, uint16_t port, const std::string& path, int* status) {
  int fd = nettest::ConnectSocket(ns, {"127.0.0.1", port}, 0);
  *status = 0;
  if (fd < 0) return "";
  nettest::SendAll(fd, "GET " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
  std::string answer = nettest::Receive(fd, 1 << 16);
  close(fd);
  if (answer.rfind("HTTP/1.1 ", 0) == 0 && answer.size() >= 12) *status = std::stoi(answer.substr(9, 3));
  return answer;
}

template <class F>
bool WaitFor(F done, int tries = 100) {
  for (int i = 0; i < tries; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

// What the test app (testing/probe_app.py) answers a probe, as the kubelet would get it.
int ExpectedAnswer(const json& original) {
  if (original.contains("httpGet")) {
    std::string path = original["httpGet"].value("path", "/");
    if (path == "/health/ready") return 503;  // the app says it is not ready: passed on as is
    return 200;  // "/ready" needs the probe's own header: 200 proves it was sent
  }
  return 200;  // tcpSocket connects; grpc "health" is SERVING
}

class SidecarContractTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to create network namespaces";
    char tmpl[] = "/tmp/tern-contract-XXXXXX";
    dir_ = mkdtemp(tmpl);
    chmod(dir_.c_str(), 0755);
    PemPair self = *CreateSelfSigned({.common_name = "app", .ip_addresses = {kPodIp}});
    ASSERT_TRUE(WriteFileAtomically(dir_ + "/app.crt", self.cert_pem).ok());
    ASSERT_TRUE(WriteFileAtomically(dir_ + "/app.key", self.key_pem).ok());
  }
  void TearDown() override {
    if (!dir_.empty()) std::system(("rm -rf " + dir_).c_str());
  }
  std::string dir_;
};

struct Sidecar {
  std::vector<std::string> argv;  // as the kubelet runs it in the pod's namespace, as its user
  std::map<std::string, std::string> env;
  std::string log;
};

TEST_F(SidecarContractTest, EveryInjectedSidecarStartsAnswersProbesAndBecomesReady) {
  int started = 0, probes_checked = 0, waits_checked = 0;
  std::set<std::string> probe_kinds;
  for (const auto& c : webhook::testing::InjectionCorpus()) {
    int doc_index = 0;
    for (const auto& doc : webhook::testing::LoadCorpusDocuments(c)) {
      SCOPED_TRACE(c.name + " document " + std::to_string(doc_index));
      const std::string ns_name = "contract";
      json pod = webhook::PodFromWorkload(doc, ns_name);
      auto result = webhook::InjectPod(pod, {ns_name, std::nullopt, std::nullopt}, webhook::testing::CorpusMesh(c));
      if (result.outcome != webhook::Outcome::kInjected) continue;
      json injected = result.pod;
      injected["metadata"]["namespace"] = ns_name;
      if (!injected["metadata"].contains("name")) injected["metadata"]["name"] = c.name + "-pod";
      const json* proxy = FindProxy(injected);
      ASSERT_NE(proxy, nullptr);

      // The pod's files under a root of its own: the downward API's annotations and labels, the
      // token and CA root volumes, the data volume (writable by the proxy's uid).
      const std::string root = dir_ + "/" + c.name + "-" + std::to_string(doc_index++);
      ASSERT_TRUE(nettest::RunShell("mkdir -p " + root + "/etc/istio/pod " + root + "/var/lib/istio/data " + root +
                                    "/var/run/secrets/tokens " + root + "/var/run/secrets/istio && chown 1337:1337 " + root +
                                    "/var/lib/istio/data && chmod -R a+rX " + root).empty());
      ASSERT_TRUE(WriteFileAtomically(root + "/etc/istio/pod/annotations", DownwardAnnotations(injected)).ok());
      ASSERT_TRUE(WriteFileAtomically(root + "/var/run/secrets/tokens/istio-token", "token\n", 0644).ok());

      std::vector<std::string> unknown;
      Sidecar sidecar;
      sidecar.env = ResolveEnv(*proxy, injected, &unknown);
      EXPECT_TRUE(unknown.empty()) << "env the test cannot resolve as a kubelet would: " << ::testing::PrintToString(unknown);
      sidecar.env["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin";
      sidecar.env["TERN_FILES_ROOT"] = root;
      const json& security = At(*proxy, {"securityContext"});
      std::string uid = std::to_string(At(security, {"runAsUser"}).is_number() ? At(security, {"runAsUser"}).get<int>() : 0);
      std::string gid = std::to_string(At(security, {"runAsGroup"}).is_number() ? At(security, {"runAsGroup"}).get<int>() : 0);
      nettest::Netns pod_ns("sc");
      ASSERT_EQ(pod_ns.error(), "");
      ASSERT_EQ(pod_ns.Exec(std::string("ip addr add ") + kPodIp + "/32 dev lo"), "");  // the pod's IP
      // As containerd sets up a pod's namespace (enable_unprivileged_ports): a non-root container
      // may bind any port, such as a status port of 123.
      ASSERT_EQ(pod_ns.Exec("sysctl -qw net.ipv4.ip_unprivileged_port_start=0"), "");
      std::vector<std::string> prefix = {"/usr/bin/env", "ip", "netns", "exec", pod_ns.name(), "setpriv", "--reuid", uid,
                                         "--regid", gid, "--clear-groups"};
      std::string caps;
      const json added = At(security, {"capabilities", "add"}).is_array() ? At(security, {"capabilities", "add"}) : json::array();
      for (const auto& cap : added) {
        std::string name = cap.get<std::string>();
        for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        caps += (caps.empty() ? "+" : ",+") + name;
      }
      if (!caps.empty()) prefix.insert(prefix.end(), {"--inh-caps=" + caps, "--ambient-caps=" + caps});
      sidecar.argv = prefix;
      sidecar.argv.push_back(kBin + "/proxy/tern-proxy");
      for (const auto& a : (*proxy)["args"]) sidecar.argv.push_back(Expand(a.get<std::string>(), sidecar.env));
      sidecar.log = root + "/proxy.log";

      // The status port the injector pointed the probes at.
      uint16_t status_port = 0;
      for (const auto& p : (*proxy)["ports"]) {
        if (p["name"] == "http-status") status_port = static_cast<uint16_t>(p["containerPort"].get<int>());
      }
      json probers = json::object();
      if (sidecar.env.count("ISTIO_KUBE_APP_PROBERS")) probers = json::parse(sidecar.env["ISTIO_KUBE_APP_PROBERS"]);

      pid_t pid = Spawn(sidecar.argv, sidecar.env, sidecar.log);
      ASSERT_GT(pid, 0);
      int code = 0;
      // Started: its health port answers, not ready without a snapshot.
      bool up = WaitFor([&] {
        Get(pod_ns, 15021, "/healthz/ready", &code);
        return code != 0;
      });
      ASSERT_TRUE(up) << "the injected sidecar did not start:\n" << *ReadFile(sidecar.log);
      ++started;
      EXPECT_EQ(code, 503);
      if (status_port) {
        Get(pod_ns, status_port, "/healthz/ready", &code);
        EXPECT_EQ(code, 503) << "status port " << status_port;
      }

      // The rewritten probes, the app down: each fails as the kubelet's own probe would.
      for (const auto& [path, original] : probers.items()) {
        std::string answer = Get(pod_ns, status_port, path, &code);
        EXPECT_EQ(code, 500) << path << "\n" << answer;
      }
      // The app up: each probe now gets the app's own answer.
      json app_spec = {{"http", json::array()}, {"https", json::array()}, {"tcp", json::array()}, {"grpc", json::array()},
                       {"cert", dir_ + "/app.crt"}, {"key", dir_ + "/app.key"}};
      std::set<int> served;
      for (const char* kind : {"grpc", "httpGet", "tcpSocket"}) {
        for (const auto& [path, original] : probers.items()) {
          if (!original.contains(kind)) continue;
          int port = original[kind]["port"].get<int>();
          if (!served.insert(port).second) continue;
          std::string list = std::string(kind) == "grpc" ? "grpc"
                             : std::string(kind) == "tcpSocket" ? "tcp"
                             : original[kind].value("scheme", "HTTP") == "HTTPS" ? "https" : "http";
          app_spec[list].push_back(port);
        }
      }
      pid_t app = -1;
      if (!probers.empty()) {
        ASSERT_TRUE(WriteFileAtomically(root + "/app.json", app_spec.dump()).ok());
        app = Spawn({"/usr/bin/env", "ip", "netns", "exec", pod_ns.name(), "/usr/bin/python3",
                     std::string(TERN_SOURCE_DIR) + "/proxy/testing/probe_app.py", root + "/app.json"},
                    {{"PATH", "/usr/bin:/bin"}}, root + "/app.log");
        ASSERT_GT(app, 0);
        ASSERT_TRUE(WaitFor([&] {
          for (int port : served) {
            if (!nettest::Connect(pod_ns, {kPodIp, static_cast<uint16_t>(port)}, 0)) return false;
          }
          return true;
        })) << *ReadFile(root + "/app.log");
      }
      for (const auto& [path, original] : probers.items()) {
        std::string answer;
        // A gRPC server may take a moment past its port opening.
        WaitFor([&] {
          answer = Get(pod_ns, status_port, path, &code);
          return code == ExpectedAnswer(original);
        }, 20);
        EXPECT_EQ(code, ExpectedAnswer(original)) << path << " " << original.dump() << "\n" << answer << *ReadFile(sidecar.log);
        if (original.contains("httpGet")) {
          EXPECT_NE(answer.find("the app answered"), std::string::npos) << answer;
        }
        for (const char* kind : {"httpGet", "tcpSocket", "grpc"}) {
          if (original.contains(kind)) probe_kinds.insert(kind);
        }
        ++probes_checked;
      }

      // Configured: a snapshot kept in the data volume (as the last run would have kept it) is
      // loaded by the restarted sidecar, which is then ready.
      Stop(pid);
      ASSERT_TRUE(WriteFileAtomically(root + "/var/lib/istio/data/tern-snapshot.json",
                                      R"({"apiVersion":"tern.dev/v1alpha1","kind":"ProxySnapshot","version":"kept-1","mesh":{"outboundTrafficPolicy":"ALLOW_ANY"}})", 0644).ok());
      pid = Spawn(sidecar.argv, sidecar.env, sidecar.log);
      ASSERT_GT(pid, 0);
      EXPECT_TRUE(WaitFor([&] {
        Get(pod_ns, 15021, "/healthz/ready", &code);
        return code == 200;
      })) << "not ready with a kept snapshot:\n" << *ReadFile(sidecar.log);
      if (status_port) {
        Get(pod_ns, status_port, "/healthz/ready", &code);
        EXPECT_EQ(code, 200);
      }
      // The classic layout's postStart hook, exactly as written: returns 0 now that it is ready.
      if (const json& command = At(*proxy, {"lifecycle", "postStart", "exec", "command"}); command.is_array()) {
        std::vector<std::string> hook = prefix;
        for (const auto& a : command) hook.push_back(a.get<std::string>());
        hook[prefix.size()] = kBin + "/proxy/tern-proxy";  // the image's PATH names it
        auto r = testing_support::RunProcess(hook, sidecar.env, "", 20s);
        EXPECT_EQ(r.exit_code, 0) << r.err;
        ++waits_checked;
      }
      Stop(pid);
      if (app > 0) Stop(app);
      EXPECT_EQ(ReadFile(sidecar.log)->find("ERROR"), std::string::npos) << *ReadFile(sidecar.log);
    }
  }
  std::cout << "sidecars started " << started << ", probes checked " << probes_checked << ", waits " << waits_checked << "\n";
  // The corpus reaches what it should: most cases inject, every probe kind is crossed.
  EXPECT_GE(started, 15);
  EXPECT_GE(probes_checked, 15);
  EXPECT_EQ(probe_kinds, (std::set<std::string>{"httpGet", "tcpSocket", "grpc"}));
  EXPECT_GE(waits_checked, 1);
}

// `tern-proxy wait` gives up at its timeout when the proxy never becomes ready.
TEST_F(SidecarContractTest, WaitGivesUpWhenNeverReady) {
  auto r = testing_support::RunProcess({kBin + "/proxy/tern-proxy", "wait", "--timeout=1s", "--period", "100ms",
                                        "--url=http://127.0.0.1:1/healthz/ready"},
                                       {}, "", 10s);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("not ready within 1s"), std::string::npos) << r.err;
  auto bad = testing_support::RunProcess({kBin + "/proxy/tern-proxy", "wait", "--bogus"}, {}, "", 10s);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("unknown flag --bogus"), std::string::npos) << bad.err;
  auto proxy_bad = testing_support::RunProcess({kBin + "/proxy/tern-proxy", "--bogus", "1"}, {}, "", 10s);
  EXPECT_EQ(proxy_bad.exit_code, 2);
  EXPECT_NE(proxy_bad.err.find("unknown flag --bogus"), std::string::npos) << proxy_bad.err;
}

// A TPROXY inbound listener needs IP_TRANSPARENT (CAP_NET_ADMIN): a proxy without it refuses to
// start and names the option, rather than bind a listener that would never see a redirected
// connection (the option's result was not checked before).
TEST_F(SidecarContractTest, ATproxyListenerWithoutItsSocketOptionIsAStartError) {
  auto r = testing_support::RunProcess({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
                                        "--bounding-set=-all", kBin + "/proxy/tern-proxy", "--interception-mode", "TPROXY",
                                        "--outbound-port=0", "--inbound-port=0", "--admin-port=0", "--health-port=0",
                                        "--stats-port=0", "--data-dir=/tmp"},
                                       {}, "", 20s);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("IP_TRANSPARENT: Operation not permitted"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace tern::proxy
