// The node installer: conflist editing as pure functions, then the real tern-cni-install
// binary against temporary bin/conf dirs, a service-account dir and the fake API server: it
// installs, keeps the installation when the primary CNI rewrites its file, and undoes it all
// on SIGTERM.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "cni-plugin/install/conflist.h"
#include "core/base/files.h"
#include "core/kube/client.h"
#include "core/kube/fake_apiserver.h"
#include "core/testing/subprocess.h"

namespace tern::cni {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing_support::ProcessResult;
using testing_support::RunProcess;

json Bridge() {
  return json::parse(R"({"cniVersion": "1.0.0", "name": "k8s-pod-network", "plugins": [
    {"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local", "subnet": "10.244.0.0/24"}},
    {"type": "portmap", "capabilities": {"portMappings": true}}]})");
}
const json kEntry = {{"type", "tern-cni"}, {"kubernetes", {{"kubeconfig", "/etc/cni/net.d/tern-cni.kubeconfig"}}}};

TEST(Conflist, TheRuntimePicksTheFirstConfigurationFileByName) {
  EXPECT_EQ(PickConfigFile({"99-x.conflist", "10-calico.conflist", "05-a.conf", "README", "tern-cni.kubeconfig"}),
            "05-a.conf");
  EXPECT_EQ(PickConfigFile({"tern-cni.kubeconfig", "notes.txt"}), std::nullopt);
}

TEST(Conflist, InsertChainsLastOnceAndRemoveUndoesIt) {
  auto once = InsertPlugin(Bridge(), kEntry);
  ASSERT_TRUE(once.ok());
  ASSERT_EQ((*once)["plugins"].size(), 3u);
  EXPECT_EQ((*once)["plugins"][2], kEntry);
  EXPECT_EQ((*once)["plugins"][1], Bridge()["plugins"][1]);
  EXPECT_TRUE(HasPluginLast(*once, kEntry));
  auto twice = InsertPlugin(*once, kEntry);
  EXPECT_EQ(*twice, *once) << "inserting again changes nothing";

  // A stale entry elsewhere in the list is replaced, not duplicated.
  json stale = Bridge();
  stale["plugins"].insert(stale["plugins"].begin() + 1, json{{"type", "tern-cni"}, {"old", true}});
  EXPECT_EQ(*InsertPlugin(stale, kEntry), *once);

  EXPECT_EQ(RemovePlugin(*once), Bridge());
  EXPECT_FALSE(HasPluginLast(Bridge(), kEntry));
}

TEST(Conflist, ASinglePluginConfBecomesTheEquivalentList) {
  json conf = {{"cniVersion", "0.4.0"}, {"name", "net"}, {"type", "ptp"}, {"ipMasq", true}};
  auto list = InsertPlugin(conf, kEntry);
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(*list, json::parse(R"({"cniVersion": "0.4.0", "name": "net",
      "plugins": [{"type": "ptp", "ipMasq": true},
                  {"type": "tern-cni", "kubernetes": {"kubeconfig": "/etc/cni/net.d/tern-cni.kubeconfig"}}]})"));
}

TEST(Conflist, BrokenFilesAreErrorsThatSayWhy) {
  EXPECT_EQ(InsertPlugin(json::array(), kEntry).status().message(), "not a JSON object");
  EXPECT_EQ(InsertPlugin({{"plugins", "x"}}, kEntry).status().message(), "plugins: must be an array");
  EXPECT_EQ(InsertPlugin({{"plugins", json::array()}}, kEntry).status().message(),
            "plugins: is empty; there is no interface plugin to chain after");
  EXPECT_EQ(InsertPlugin({{"name", "x"}}, kEntry).status().message(), "type: required (a plugin)");
}

// ---- The binary ----

class Install : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tern-cni-install-XXXXXX";
    dir_ = mkdtemp(tmpl);
    for (const char* d : {"/bin", "/conf", "/secrets"}) ASSERT_EQ(mkdir((dir_ + d).c_str(), 0755), 0);
    api_ = std::make_unique<kube::FakeApiServer>("sa-token");
    api_->Put("/api/v1/namespaces/my-app/pods/web", {{"metadata", {{"name", "web"}}}});
    ASSERT_TRUE(WriteFileAtomically(dir_ + "/secrets/token", "sa-token\n").ok());
    ASSERT_TRUE(WriteFileAtomically(dir_ + "/secrets/ca.crt", api_->ca_pem()).ok());
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }

  std::vector<std::string> Argv(const std::string& mode) const {
    std::vector<std::string> argv = {installer_, "--plugin-source", plugin_, "--bin-dir", dir_ + "/bin",
                                     "--conf-dir", dir_ + "/conf", "--host-conf-dir", dir_ + "/conf",
                                     "--secrets-dir", dir_ + "/secrets", "--poll-interval-ms", "50"};
    if (!mode.empty()) argv.push_back(mode);
    return argv;
  }
  std::map<std::string, std::string> Env() const {
    return {{"KUBERNETES_SERVICE_HOST", "127.0.0.1"}, {"KUBERNETES_SERVICE_PORT", std::to_string(api_->port())}};
  }
  ProcessResult Run(const std::string& mode) const { return RunProcess(Argv(mode), Env(), "", 20s); }
  json Conf(const std::string& name) const { return json::parse(*ReadFile(dir_ + "/conf/" + name)); }
  bool Exists(const std::string& rel) const {
    struct stat st;
    return stat((dir_ + rel).c_str(), &st) == 0;
  }
  unsigned ModeOf(const std::string& rel) const {
    struct stat st{};
    stat((dir_ + rel).c_str(), &st);
    return st.st_mode & 0777;
  }

  std::string dir_;
  std::string installer_ = std::string(TERN_BINARY_DIR) + "/cni-plugin/tern-cni-install";
  std::string plugin_ = std::string(TERN_BINARY_DIR) + "/cni-plugin/tern-cni";
  std::unique_ptr<kube::FakeApiServer> api_;
};

TEST_F(Install, OncePutsBinaryKubeconfigAndChainInPlace) {
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/conf/10-bridge.conflist", Bridge().dump(2)).ok());
  ProcessResult r = Run("--once");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("\"msg\":\"tern-cni installed\""), std::string::npos) << r.err;

  EXPECT_EQ(*ReadFile(dir_ + "/bin/tern-cni"), *ReadFile(plugin_));
  EXPECT_EQ(ModeOf("/bin/tern-cni"), 0755u);
  EXPECT_EQ(ModeOf("/conf/tern-cni.kubeconfig"), 0600u) << "the kubeconfig holds a token";
  json conf = Conf("10-bridge.conflist");
  ASSERT_EQ(conf["plugins"].size(), 3u);
  EXPECT_EQ(conf["plugins"][2]["type"], "tern-cni");
  EXPECT_EQ(conf["plugins"][2]["kubernetes"]["kubeconfig"], dir_ + "/conf/tern-cni.kubeconfig");
  EXPECT_EQ(conf["plugins"][2]["kubernetes"]["excludeNamespaces"], json({"kube-system", "tern-system"}));
  EXPECT_EQ(RemovePlugin(conf), Bridge()) << "the node's own plugins are untouched";

  // The kubeconfig written from the service account reads pods.
  auto cluster = kube::LoadKubeconfig(dir_ + "/conf/tern-cni.kubeconfig");
  ASSERT_TRUE(cluster.ok()) << cluster.status().message();
  auto client = kube::Client::Create(*cluster, 2000ms);
  ASSERT_TRUE(client.ok());
  auto pod = (*client)->Get("/api/v1/namespaces/my-app/pods/web");
  ASSERT_TRUE(pod.ok());
  EXPECT_EQ(pod->status, 200);

  EXPECT_EQ(Run("--check").exit_code, 0);
  FileStamp before = StampOf(dir_ + "/conf/10-bridge.conflist");
  r = Run("--once");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "") << "nothing changed, nothing written";
  EXPECT_TRUE(StampOf(dir_ + "/conf/10-bridge.conflist") == before);

  r = Run("--uninstall");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Conf("10-bridge.conflist"), Bridge());
  EXPECT_FALSE(Exists("/bin/tern-cni"));
  EXPECT_FALSE(Exists("/conf/tern-cni.kubeconfig"));
  EXPECT_NE(Run("--check").exit_code, 0);
}

TEST_F(Install, ASinglePluginConfIsReplacedByAConflist) {
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/conf/10-ptp.conf",
                                  R"({"cniVersion": "1.0.0", "name": "net", "type": "ptp"})").ok());
  ProcessResult r = Run("--once");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(Exists("/conf/10-ptp.conf"));
  json conf = Conf("10-ptp.conflist");
  EXPECT_EQ(conf["plugins"][0], json::parse(R"({"type": "ptp"})"));
  EXPECT_EQ(conf["plugins"][1]["type"], "tern-cni");
}

TEST_F(Install, WithoutAUsableConfigurationItSaysWhyAndWritesNoChain) {
  ProcessResult r = Run("--once");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no CNI configuration in " + dir_ + "/conf yet"), std::string::npos) << r.err;
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/conf/10-bad.conflist", "{\"plugins\": [").ok());
  r = Run("--once");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(dir_ + "/conf/10-bad.conflist: not valid JSON"), std::string::npos) << r.err;
  EXPECT_EQ(*ReadFile(dir_ + "/conf/10-bad.conflist"), "{\"plugins\": [") << "a file it cannot read is left as it is";
  r = RunProcess({installer_, "--poll-interval-ms", "5"}, Env(), "", 20s);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--poll-interval-ms: \"5\" is not a number from 10 to 3600000"), std::string::npos) << r.err;
}

// Polls `done` every 20 ms for up to five seconds.
template <class F>
bool Eventually(F done) {
  for (int i = 0; i < 250; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

TEST_F(Install, TheDaemonKeepsTheChainAndUndoesEverythingOnSigterm) {
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/conf/10-bridge.conflist", Bridge().dump(2)).ok());
  pid_t pid = testing_support::Spawn(Argv(""), Env(), dir_ + "/daemon.log");
  ASSERT_GT(pid, 0);
  auto chained = [&] {
    auto text = ReadFile(dir_ + "/conf/10-bridge.conflist");
    json j = json::parse(text.ok() ? *text : "", nullptr, false);
    return j.is_object() && j["plugins"].size() == 3 && j["plugins"][2]["type"] == "tern-cni";
  };
  EXPECT_TRUE(Eventually(chained));
  // The node's network plugin rewrites its file (an upgrade): tern-cni is chained again.
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/conf/10-bridge.conflist", Bridge().dump(2)).ok());
  EXPECT_TRUE(Eventually(chained));

  kill(pid, SIGTERM);
  int code = testing_support::WaitExit(pid, 5000ms);
  if (code == -1) testing_support::Stop(pid);  // did not exit in time: end it by its pid
  ASSERT_NE(code, -1) << "the installer did not exit within 5 s of SIGTERM";
  EXPECT_EQ(code, 0) << *ReadFile(dir_ + "/daemon.log");
  EXPECT_EQ(Conf("10-bridge.conflist"), Bridge());
  EXPECT_FALSE(Exists("/bin/tern-cni"));
  EXPECT_FALSE(Exists("/conf/tern-cni.kubeconfig"));
}

}  // namespace
}  // namespace tern::cni
