#include "e2e/cni/local_node.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <thread>

#include "core/base/files.h"

namespace tern::e2e {

using namespace std::chrono_literals;
using nlohmann::json;

namespace {

constexpr const char* kPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const std::string kToken = "node-cni-token";

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

// The fake API server, listening inside `ns`: a socket belongs to the namespace of the thread
// that made it, and the server's threads start from that one.
std::unique_ptr<kube::FakeApiServer> ApiServerIn(const nettest::Netns& ns) {
  std::unique_ptr<kube::FakeApiServer> api;
  std::thread([&] {
    int fd = open(ns.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) return;
    close(fd);
    api = std::make_unique<kube::FakeApiServer>(kToken);
  }).join();
  return api;
}

}  // namespace

Result<std::unique_ptr<LocalNode>> LocalNode::Create(LocalNodeOptions options) {
  for (const char* need : {"/usr/bin/go", "/usr/lib/cni/bridge", "/usr/lib/cni/host-local",
                           "/usr/share/gocode/src/github.com/containerd/go-cni/cni.go"}) {
    if (!Exists(need)) {
      return Status::Error(std::string(need) + " is missing: scripts/install-deps.sh installs golang-go, " +
                           "golang-github-containerd-go-cni-dev and containernetworking-plugins");
    }
  }
  // Go wants absolute paths (GOCACHE), and the node runs the plugins from other directories.
  for (std::string* dir : {&options.build_dir, &options.source_dir}) {
    char* real = realpath(dir->c_str(), nullptr);
    if (!real) return Status::Error("no such directory: " + *dir);
    *dir = real;
    std::free(real);
  }
  std::unique_ptr<LocalNode> n(new LocalNode());
  n->options_ = options;
  char tmpl[] = "/tmp/tern-node-XXXXXX";
  if (!mkdtemp(tmpl)) return Status::Error("cannot create a temporary directory");
  n->dir_ = tmpl;
  // Built into this node's own directory, so concurrent tests never run each other's half-written
  // binary; Go's build cache is safe to share.
  n->driver_ = n->dir_ + "/gocni-driver";
  // GOPATH mode against Debian's packaged sources: no module download, no network.
  auto build = testing_support::RunProcess(
      {"/usr/bin/go", "build", "-o", n->driver_, options.source_dir + "/e2e/cni/gocni_driver.go"},
      {{"PATH", kPath}, {"HOME", options.build_dir}, {"GO111MODULE", "off"}, {"GOPATH", "/usr/share/gocode"},
       {"GOCACHE", options.build_dir + "/e2e/gocache"}, {"GOFLAGS", "-buildvcs=false"}},
      "", 240s);
  if (build.exit_code != 0) return Status::Error("go build of the go-cni driver failed:\n" + build.out + build.err);

  n->node_ = std::make_unique<nettest::Netns>("node");
  n->pod_ = std::make_unique<nettest::Netns>("gpod");
  // Addresses are usable at once: duplicate address detection would hold IPv6 back a second.
  for (const nettest::Netns* ns : {n->node_.get(), n->pod_.get()}) {
    ns->Exec("sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0");
  }
  n->api_ = ApiServerIn(*n->node_);
  if (!n->api_) return Status::Error("cannot start the fake API server in the node namespace");
  Status s = WriteFileAtomically(n->dir_ + "/tern-cni.kubeconfig", n->api_->Kubeconfig(), 0600);
  if (!s.ok()) return s;
  json conflist = {
      {"cniVersion", "1.0.0"},
      {"name", "tern-local"},
      {"plugins",
       {{{"type", "bridge"},
         {"bridge", options.bridge},
         {"isGateway", true},
         {"ipMasq", false},
         {"ipam",
          {{"type", "host-local"},
           {"dataDir", n->dir_ + "/ipam"},
           {"ranges", {{{{"subnet", options.subnet4}}}, {{{"subnet", options.subnet6}}}}},
           {"routes", {{{"dst", "0.0.0.0/0"}}, {{"dst", "::/0"}}}}}}},
        {{"type", "tern-cni"},
         {"kubernetes",
          {{"kubeconfig", n->dir_ + "/tern-cni.kubeconfig"}, {"excludeNamespaces", {"kube-system"}}}}}}}};
  s = WriteFileAtomically(n->dir_ + "/tern.conflist", conflist.dump(2));
  if (!s.ok()) return s;
  return n;
}

LocalNode::~LocalNode() {
  api_.reset();
  pod_.reset();
  node_.reset();
  if (!dir_.empty()) std::system(("rm -rf " + dir_).c_str());
}

void LocalNode::PutPod(const json& pod) {
  const json& md = pod["metadata"];
  api_->Put("/api/v1/namespaces/" + md["namespace"].get<std::string>() + "/pods/" + md["name"].get<std::string>(),
            pod);
}

testing_support::ProcessResult LocalNode::GoCni(const std::string& op, const std::string& pod_namespace,
                                                const std::string& pod_name) const {
  return testing_support::RunProcess(
      {"/usr/bin/env", "ip", "netns", "exec", node_->name(), driver_, "-op", op, "-conflist", dir_ + "/tern.conflist",
       "-bin-dirs", "/usr/lib/cni:" + options_.build_dir + "/cni-plugin", "-netns", pod_->path(), "-id",
       "sandbox-" + pod_name, "-pod-name", pod_name, "-pod-namespace", pod_namespace, "-timeout", "30s"},
      {{"PATH", kPath}}, "", 60s);
}

}  // namespace tern::e2e
