// tern-cni as a runtime runs it: the real binary, its configuration on stdin, CNI_* in the
// environment, a network namespace made by the test, and a fake Kubernetes API serving the
// pods. ADD, CHECK and DEL on a meshed pod; then every kind of bad input, each answered with its
// CNI error code and message and leaving the namespace's ruleset exactly as it was.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>
#include <thread>
#include <vector>
#include <memory>
#include <string>

#include "cni-plugin/testing/cni_mode_pod.h"
#include "core/base/files.h"
#include "core/capture/testing/netns_traffic.h"
#include "core/capture/testing/sh.h"
#include "core/kube/fake_apiserver.h"
#include "core/testing/subprocess.h"

namespace tern::cni {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using tern::nettest::Netns;
using tern::testing_support::ProcessResult;
using tern::testing_support::RunProcess;

const std::string kToken = "cni-token";

// The injector's CNI-mode pod, with one excluded outbound port and range.
json InjectedPod(const std::string& name, json extra_annotations = json::object()) {
  json overrides = {{"traffic.sidecar.istio.io/excludeOutboundIPRanges", "10.200.0.3/32"},
                    {"traffic.sidecar.istio.io/excludeOutboundPorts", "8081"}};
  overrides.merge_patch(extra_annotations);
  return testing::CniModePod("my-app", name, overrides);
}

json PrevResult() {
  return json::parse(R"({"cniVersion": "1.0.0",
    "interfaces": [{"name": "cni0"}, {"name": "eth0", "sandbox": "/var/run/netns/x"}],
    "ips": [{"interface": 1, "address": "10.200.0.1/24", "gateway": "10.200.0.2"}],
    "routes": [{"dst": "0.0.0.0/0"}], "dns": {}})");
}

class TernCni : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to create network namespaces";
    char tmpl[] = "/tmp/tern-cni-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
    api_ = std::make_unique<kube::FakeApiServer>(kToken);
    api_->Put("/api/v1/namespaces/my-app/pods/web", InjectedPod("web"));
    api_->Put("/api/v1/namespaces/my-app/pods/tproxy",
              InjectedPod("tproxy", {{"sidecar.istio.io/interceptionMode", "TPROXY"}}));
    api_->Put("/api/v1/namespaces/my-app/pods/plain",
              {{"metadata", {{"name", "plain"}, {"annotations", {{"team", "a"}}}}}});
    api_->Put("/api/v1/namespaces/my-app/pods/bad",
              InjectedPod("bad", {{"traffic.sidecar.istio.io/excludeOutboundPorts", "8081,99999"}}));
    ASSERT_TRUE(WriteFileAtomically(dir_ + "/kubeconfig", api_->Kubeconfig()).ok());
    pod_ = std::make_unique<Netns>("cnipod");
  }
  void TearDown() override {
    if (!dir_.empty()) std::system(("rm -rf " + dir_).c_str());
  }

  json Conf(json extra = json::object()) const {
    json c = {{"cniVersion", "1.0.0"},
              {"name", "k8s-pod-network"},
              {"type", "tern-cni"},
              {"kubernetes", {{"kubeconfig", dir_ + "/kubeconfig"}, {"excludeNamespaces", {"kube-system"}},
                              {"timeoutMs", 1000}}},
              {"prevResult", PrevResult()}};
    c.merge_patch(extra);
    return c;
  }

  // What a runtime puts in the plugin's environment; `netns` "-" leaves CNI_NETNS out.
  std::map<std::string, std::string> Env(const std::string& command, const std::string& pod, const std::string& ns,
                                         const std::string& netns) const {
    std::map<std::string, std::string> env = {
        {"CNI_COMMAND", command},       {"CNI_CONTAINERID", "c0ffee"},
        {"CNI_IFNAME", "eth0"},         {"CNI_PATH", "/opt/cni/bin"},
        {"CNI_NETNS", netns.empty() ? pod_->path() : netns},
        {"CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAMESPACE=" + ns + ";K8S_POD_NAME=" + pod + ";K8S_POD_INFRA_CONTAINER_ID=c0ffee"}};
    if (netns == "-") env.erase("CNI_NETNS");
    return env;
  }
  static std::string Binary() { return std::string(TERN_BINARY_DIR) + "/cni-plugin/tern-cni"; }

  ProcessResult Cni(const std::string& command, const std::string& stdin_text, const std::string& pod = "web",
                    const std::string& ns = "my-app", const std::string& netns = "") const {
    return RunProcess({Binary()}, Env(command, pod, ns, netns), stdin_text, 20s);
  }
  // Starts the plugin without waiting for it, its configuration read from a file.
  pid_t StartCni(const std::string& command, const json& conf, const std::string& pod, const std::string& netns = "") const {
    std::string conf_file = dir_ + "/conf-" + command + "-" + pod + ".json";
    if (!WriteFileAtomically(conf_file, conf.dump()).ok()) return -1;
    return tern::testing_support::Spawn({Binary()}, Env(command, pod, "my-app", netns), dir_ + "/" + pod + ".log", conf_file);
  }
  ProcessResult Cni(const std::string& command, const json& conf, const std::string& pod = "web",
                    const std::string& ns = "my-app", const std::string& netns = "") const {
    return Cni(command, conf.dump(), pod, ns, netns);
  }

  std::string Ruleset() const { return pod_->Exec("nft list ruleset"); }
  // What a plugin started by StartCni wrote.
  std::string LogOf(const std::string& pod) const {
    Result<std::string> log = ReadFile(dir_ + "/" + pod + ".log");
    return log.ok() ? *log : log.status().message();
  }

  // The error JSON a failed call printed: its code and message.
  static std::pair<int, std::string> ErrorOf(const ProcessResult& r) {
    json j = json::parse(r.out, nullptr, false);
    if (!j.is_object() || !j.contains("code")) return {0, "no error JSON on stdout: " + r.out};
    return {j["code"].get<int>(), j["msg"].get<std::string>()};
  }

  std::string dir_;
  std::unique_ptr<kube::FakeApiServer> api_;
  std::unique_ptr<Netns> pod_;
};

TEST_F(TernCni, AddInstallsCaptureAndReturnsPrevResultUnchanged) {
  ProcessResult r = Cni("ADD", Conf());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(json::parse(r.out), PrevResult());
  EXPECT_NE(r.err.find("tern-cni: ADD pod my-app/web: capture installed (sidecar present, REDIRECT)"),
            std::string::npos) << r.err;
  std::string rules = Ruleset();
  EXPECT_NE(rules.find("table inet tern"), std::string::npos) << rules;
  EXPECT_NE(rules.find("redirect to :15001"), std::string::npos) << rules;
  EXPECT_NE(rules.find("8081"), std::string::npos) << "the pod's excludeOutboundPorts is honoured\n" << rules;
  EXPECT_NE(rules.find("10.200.0.3"), std::string::npos) << "the pod's excludeOutboundIPRanges is honoured\n" << rules;

  // ADD again (a runtime retry) changes nothing.
  r = Cni("ADD", Conf());
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(Ruleset(), rules);

  r = Cni("CHECK", Conf());
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out, "");

  // A rule deleted by hand: CHECK notices and says which.
  std::string listing = pod_->Exec("nft -a list chain inet tern outbound");
  size_t at = listing.find("tcp dport 8081");
  ASSERT_NE(at, std::string::npos) << listing;
  size_t handle = listing.find("# handle ", at);
  ASSERT_TRUE(tern::nettest::Sh("ip netns exec " + pod_->name() + " nft delete rule inet tern outbound handle " +
                                listing.substr(handle + 9, listing.find('\n', handle) - handle - 9)));
  r = Cni("CHECK", Conf());
  EXPECT_EQ(r.exit_code, 1);
  auto [code, msg] = ErrorOf(r);
  EXPECT_EQ(code, 102);
  EXPECT_NE(msg.find("pod my-app/web: capture check failed: table inet tern differs from the plan at line"),
            std::string::npos) << msg;
  EXPECT_NE(msg.find("8081"), std::string::npos) << msg;

  // DEL leaves the namespace's ruleset as it was before ADD, without asking the API (the pod
  // may be gone); DEL again, or with the namespace gone, still succeeds.
  int requests = api_->requests();
  r = Cni("DEL", Conf());
  EXPECT_EQ(api_->requests(), requests);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(Ruleset(), "");
  r = Cni("DEL", Conf());
  EXPECT_EQ(r.exit_code, 0) << r.out;
  r = Cni("DEL", Conf(), "web", "my-app", "/var/run/netns/tern-no-such-namespace");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  r = Cni("DEL", Conf(), "web", "my-app", "-");
  EXPECT_EQ(r.exit_code, 0) << r.out;

  // CHECK on a pod whose capture is gone fails.
  r = Cni("CHECK", Conf());
  EXPECT_EQ(ErrorOf(r), std::make_pair(102, std::string("pod my-app/web: capture check failed: table inet tern is missing")));
}

TEST_F(TernCni, TproxyPodGetsItsPolicyRoutingAndDelRemovesIt) {
  ProcessResult r = Cni("ADD", Conf(), "tproxy");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(Ruleset().find("tproxy"), std::string::npos);
  EXPECT_NE(pod_->Exec("ip rule show").find("fwmark 0x539 lookup 133"), std::string::npos);
  r = Cni("CHECK", Conf(), "tproxy");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  r = Cni("DEL", Conf(), "tproxy");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(Ruleset(), "");
  EXPECT_EQ(pod_->Exec("ip rule show").find("lookup 133"), std::string::npos);
}

TEST_F(TernCni, PodsWithoutTheSidecarAndExcludedNamespacesAreLeftAlone) {
  ProcessResult r = Cni("ADD", Conf(), "plain");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(json::parse(r.out), PrevResult());
  EXPECT_NE(r.err.find("not captured: no sidecar"), std::string::npos) << r.err;
  EXPECT_EQ(Ruleset(), "");

  int before = api_->requests();
  r = Cni("ADD", Conf(), "web", "kube-system");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(api_->requests(), before) << "an excluded namespace costs no API call";
  EXPECT_NE(r.err.find("namespace kube-system is excluded"), std::string::npos) << r.err;

  // A runtime that is not Kubernetes passes no pod: nothing to look up, nothing captured.
  std::map<std::string, std::string> env = {{"CNI_COMMAND", "ADD"}, {"CNI_CONTAINERID", "c"},
                                            {"CNI_IFNAME", "eth0"}, {"CNI_NETNS", pod_->path()}};
  r = RunProcess({std::string(TERN_BINARY_DIR) + "/cni-plugin/tern-cni"}, env, Conf().dump(), 20s);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(Ruleset(), "");
}

TEST_F(TernCni, PrevResultIsConvertedToTheRequestedVersion) {
  json prev = PrevResult();
  prev["cniVersion"] = "1.0.0";
  ProcessResult r = Cni("ADD", Conf({{"cniVersion", "0.4.0"}, {"prevResult", prev}}), "plain");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  json out = json::parse(r.out);
  EXPECT_EQ(out["cniVersion"], "0.4.0");
  EXPECT_EQ(out["ips"][0]["version"], "4");
  r = Cni("ADD", Conf({{"cniVersion", "1.1.0"}}), "plain");
  EXPECT_EQ(json::parse(r.out)["cniVersion"], "1.1.0");
}

TEST_F(TernCni, EveryBadInputHasItsCodeAndMessageAndLeavesNoRules) {
  // A port that accepts TCP and closes it: where a stopped API server's address would be.
  int closed = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(closed, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(closed, reinterpret_cast<sockaddr*>(&a), &len);
  close(closed);
  std::string down = api_->Kubeconfig();
  down.replace(down.find(std::to_string(api_->port())), std::to_string(api_->port()).size(),
               std::to_string(ntohs(a.sin_port)));
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/kubeconfig-down", down).ok());
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/kubeconfig-badtoken", api_->Kubeconfig("wrong")).ok());

  json no_prev = Conf();
  no_prev.erase("prevResult");
  struct Case {
    std::string name;
    std::string command;
    std::string stdin_text;
    std::string pod;
    std::string netns;
    int code;
    std::string msg;
  } cases[] = {
      {"malformed stdin", "ADD", "{\"cniVersion\": \"1.0.0\",", "web", "", 6,
       "network configuration: not valid JSON: [json.exception.parse_error.101]"},
      {"missing prevResult", "ADD", no_prev.dump(), "web", "", 7,
       "prevResult: required: tern-cni is a chained plugin"},
      {"wrong prevResult", "ADD", Conf({{"prevResult", {{"ips", {{{"address", "nope"}}}}}}}).dump(), "web", "", 7,
       "prevResult.ips[0].address: \"nope\" is not an address in CIDR form"},
      {"unsupported cniVersion", "ADD", Conf({{"cniVersion", "0.2.0"}}).dump(), "web", "", 1,
       "cniVersion: 0.2.0 is not supported"},
      {"netns does not exist", "ADD", Conf().dump(), "web", "/var/run/netns/tern-no-such-namespace", 4,
       "CNI_NETNS: /var/run/netns/tern-no-such-namespace: No such file or directory"},
      {"API server down", "ADD", Conf({{"kubernetes", {{"kubeconfig", dir_ + "/kubeconfig-down"}}}}).dump(), "web", "",
       11, "Kubernetes API: GET /api/v1/namespaces/my-app/pods/web: "},
      {"API refuses the token", "ADD", Conf({{"kubernetes", {{"kubeconfig", dir_ + "/kubeconfig-badtoken"}}}}).dump(),
       "web", "", 100, "Kubernetes API: GET /api/v1/namespaces/my-app/pods/web: 401 Unauthorized"},
      {"pod not found", "ADD", Conf().dump(), "gone", "", 100,
       "Kubernetes API: GET /api/v1/namespaces/my-app/pods/gone: 404 \"gone\" not found"},
      {"kubeconfig missing", "ADD", Conf({{"kubernetes", {{"kubeconfig", dir_ + "/none"}}}}).dump(), "web", "", 7,
       "kubernetes.kubeconfig: cannot open " + dir_ + "/none"},
      {"netns path that is not a network namespace", "ADD", Conf().dump(), "web", dir_ + "/kubeconfig", 102,
       "pod my-app/web: capture not installed: cannot enter network namespace " + dir_ + "/kubeconfig"},
      {"invalid annotation", "ADD", Conf().dump(), "bad", "", 101,
       "pod my-app/bad: metadata.annotations[\"traffic.sidecar.istio.io/excludeOutboundPorts\"]: "},
      {"pod name that is not a name", "ADD", Conf().dump(), "../../secrets", "", 4,
       "CNI_ARGS: K8S_POD_NAME \"../../secrets\" is not a pod name"},
      {"CHECK before 0.4.0", "CHECK", Conf({{"cniVersion", "0.3.1"}}).dump(), "web", "", 1,
       "cniVersion: CHECK needs 0.4.0 or later"},
      {"STATUS before 1.1.0", "STATUS", Conf().dump(), "web", "", 1, "cniVersion: STATUS needs 1.1.0"},
      {"STATUS without a usable kubeconfig", "STATUS",
       Conf({{"cniVersion", "1.1.0"}, {"kubernetes", {{"kubeconfig", dir_ + "/none"}}}}).dump(), "web", "", 50,
       "kubernetes.kubeconfig: cannot open"},
      {"unknown command", "ATTACH", Conf().dump(), "web", "", 4, "CNI_COMMAND: \"ATTACH\" is not one of"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    ProcessResult r = Cni(c.command, c.stdin_text, c.pod, "my-app", c.netns);
    EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
    auto [code, msg] = ErrorOf(r);
    EXPECT_EQ(code, c.code) << msg;
    EXPECT_EQ(msg.substr(0, c.msg.size()), c.msg) << msg;
    EXPECT_EQ(Ruleset(), "") << "a failed call leaves no rules";
  }
}

// An API server that answers late, or sends half of the pod and then hangs: the ADD fails at
// its deadline with the API error, and installs nothing.
TEST_F(TernCni, ASlowOrStalledApiServerCostsTheConfiguredTimeoutAndNoRules) {
  for (bool stall_mid_body : {false, true}) {
    SCOPED_TRACE(stall_mid_body ? "stalls mid-body" : "answers late");
    if (stall_mid_body) api_->set_stall_mid_body(3000ms);
    else api_->set_delay(3000ms);
    ProcessResult r = Cni("ADD", Conf({{"kubernetes", {{"timeoutMs", 300}}}}));
    EXPECT_EQ(r.exit_code, 1);
    auto [code, msg] = ErrorOf(r);
    EXPECT_EQ(code, 11) << msg;
    EXPECT_NE(msg.find("Kubernetes API: GET /api/v1/namespaces/my-app/pods/web"), std::string::npos) << msg;
    EXPECT_LT(r.wall, 2500ms) << "the call gives up at its deadline, not the server's pace";
    EXPECT_EQ(Ruleset(), "");
    api_->set_delay(0ms);
    api_->set_stall_mid_body(0ms);
  }
}

TEST_F(TernCni, VersionStatusAndGcAnswerAsTheSpecSays) {
  ProcessResult r = Cni("VERSION", std::string("{\"cniVersion\":\"1.1.0\"}"));
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_EQ(json::parse(r.out),
            json::parse(R"({"cniVersion":"1.1.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]})"));
  r = Cni("STATUS", Conf({{"cniVersion", "1.1.0"}}));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out, "");
  r = Cni("GC", Conf({{"cniVersion", "1.1.0"}, {"cni.dev/valid-attachments", json::array()}}));
  EXPECT_EQ(r.exit_code, 0) << r.out;
}

// A node under stress, as a kubelet and a runtime can make it.

// The runtime gives up on an ADD (its timeout, a restart) and kills the plugin wherever it is,
// then calls DEL, as kubelet does for a sandbox that failed: DEL leaves the namespace as it was
// before ADD, nftables and policy routing alike, and the retried ADD installs the whole capture.
// The kill lands at every point of the ADD, from before the API answers to after the rules.
TEST_F(TernCni, AnAddKilledAnywhereIsUndoneByDelAndARetryInstallsTheWholeCapture) {
  for (const std::string pod : {"web", "tproxy"}) {
    ProcessResult clean = Cni("ADD", Conf(), pod);
    ASSERT_EQ(clean.exit_code, 0) << clean.out << clean.err;
    const std::string whole = Ruleset();
    const auto add_takes = std::chrono::duration_cast<std::chrono::milliseconds>(clean.wall);
    ASSERT_EQ(Cni("DEL", Conf(), pod).exit_code, 0);
    const std::string rules_before = pod_->Exec("ip rule show"), routes_before = pod_->Exec("ip route show table all");
    int killed_before_exit = 0;
    for (auto at = 0ms; at <= add_takes + 10ms; at += std::max(1ms, add_takes / 12)) {
      pid_t pid = StartCni("ADD", Conf(), pod);
      ASSERT_GT(pid, 0);
      std::this_thread::sleep_for(at);
      killed_before_exit += kill(pid, SIGKILL) == 0 && tern::testing_support::WaitExit(pid, 5s) == 128 + SIGKILL;
      tern::testing_support::WaitExit(pid, 5s);
      std::string left = Ruleset();
      EXPECT_TRUE(left.empty() || left == whole) << pod << " killed at " << at.count() << " ms left part of a ruleset:\n" << left;
      ProcessResult del = Cni("DEL", Conf(), pod);
      EXPECT_EQ(del.exit_code, 0) << del.out << del.err;
      EXPECT_EQ(Ruleset(), "") << pod << " killed at " << at.count() << " ms";
      EXPECT_EQ(pod_->Exec("ip rule show"), rules_before) << pod << " killed at " << at.count() << " ms";
      EXPECT_EQ(pod_->Exec("ip route show table all"), routes_before) << pod << " killed at " << at.count() << " ms";
    }
    EXPECT_GT(killed_before_exit, 2) << "the kills landed inside the ADD";
    // A killed ADD, no DEL, then the runtime's retry: the retry's capture is the whole one.
    pid_t pid = StartCni("ADD", Conf(), pod);
    std::this_thread::sleep_for(add_takes / 2);
    kill(pid, SIGKILL);
    tern::testing_support::WaitExit(pid, 5s);
    ProcessResult retry = Cni("ADD", Conf(), pod);
    EXPECT_EQ(retry.exit_code, 0) << retry.out << retry.err;
    EXPECT_EQ(Ruleset(), whole);
    EXPECT_EQ(Cni("CHECK", Conf(), pod).exit_code, 0);
    ASSERT_EQ(Cni("DEL", Conf(), pod).exit_code, 0);
    EXPECT_EQ(pod_->Exec("ip rule show"), rules_before);
  }
}

// Fifty pods scheduled at once: fifty ADDs run together, each pod gets its whole capture; then
// fifty DELs together leave nothing.
TEST_F(TernCni, FiftyConcurrentAddsEachCaptureTheirPodAndDelsUndoThem) {
  constexpr int kPods = 50;
  std::vector<std::unique_ptr<Netns>> pods;
  for (int i = 0; i < kPods; ++i) {
    const std::string name = "crowd" + std::to_string(i);
    pods.push_back(std::make_unique<Netns>("cni" + name));
    ASSERT_EQ(pods.back()->error(), "");
    api_->Put("/api/v1/namespaces/my-app/pods/" + name,
              InjectedPod(name, i % 2 ? json{{"sidecar.istio.io/interceptionMode", "TPROXY"}} : json::object()));
  }
  // The plugin's default API timeout (5 s), not the fixture's 1 s: fifty sanitizer-built
  // processes started at once on two cores, beside the other tests, can take longer than a
  // second to be answered (seen once in a loaded ctest run); what is tested here is that each
  // ADD captures its own pod, not how fast fifty of them start.
  auto run_all = [&](const std::string& command) {
    std::vector<pid_t> pids;
    const json conf = Conf({{"kubernetes", {{"timeoutMs", 5000}}}});
    for (int i = 0; i < kPods; ++i) pids.push_back(StartCni(command, conf, "crowd" + std::to_string(i), pods[i]->path()));
    std::vector<int> codes;
    for (pid_t pid : pids) codes.push_back(tern::testing_support::WaitExit(pid, 60s));
    return codes;
  };
  auto start = std::chrono::steady_clock::now();
  std::vector<int> codes = run_all("ADD");
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  const std::string redirect = pods[0]->Exec("nft list ruleset"), tproxy = pods[1]->Exec("nft list ruleset");
  EXPECT_NE(redirect.find("redirect to :15001"), std::string::npos) << redirect;
  EXPECT_NE(tproxy.find("tproxy"), std::string::npos) << tproxy;
  for (int i = 0; i < kPods; ++i) {
    EXPECT_EQ(codes[i], 0) << "crowd" << i << ": " << LogOf("crowd" + std::to_string(i));
    EXPECT_EQ(pods[i]->Exec("nft list ruleset"), i % 2 ? tproxy : redirect) << "crowd" << i;
    if (i % 2) {
      EXPECT_NE(pods[i]->Exec("ip rule show").find("fwmark 0x539 lookup 133"), std::string::npos) << "crowd" << i;
    }
  }
  std::cout << kPods << " concurrent ADDs took " << took.count() << " ms\n";
  codes = run_all("DEL");
  for (int i = 0; i < kPods; ++i) {
    EXPECT_EQ(codes[i], 0) << "crowd" << i;
    EXPECT_EQ(pods[i]->Exec("nft list ruleset"), "") << "crowd" << i;
    EXPECT_EQ(pods[i]->Exec("ip rule show").find("lookup 133"), std::string::npos) << "crowd" << i;
  }
}

}  // namespace
}  // namespace tern::cni
