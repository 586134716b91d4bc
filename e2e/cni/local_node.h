// A Kubernetes node's pod networking on one machine, for the tern-cni e2e test and the demo:
// a "node" network namespace holding the bridge and a fake API server that serves pods, a
// "pod" namespace per sandbox, and containerd's go-cni library (built here with Debian's Go)
// running bridge + host-local + tern-cni on it. Root only; nothing leaves the namespaces.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "core/base/status.h"
#include "core/capture/testing/netns_traffic.h"
#include "core/kube/fake_apiserver.h"
#include "core/testing/subprocess.h"

namespace tern::e2e {

struct LocalNodeOptions {
  std::string build_dir;        // where tern-cni (cni-plugin/) and tern-init are; Go's build cache
  std::string source_dir;       // for e2e/cni/gocni_driver.go
  std::string bridge = "cni-tern0";
  std::string subnet4 = "10.22.0.0/24", subnet6 = "fd00:22::/64";
  std::string gateway4 = "10.22.0.1", gateway6 = "fd00:22::1";
};

class LocalNode {
 public:
  // Builds the go-cni driver, makes the node namespace with its API server, writes the conflist
  // and tern-cni's kubeconfig. Fails with what is missing (Go, go-cni, the reference plugins).
  static Result<std::unique_ptr<LocalNode>> Create(LocalNodeOptions options);
  ~LocalNode();

  kube::FakeApiServer& api() { return *api_; }
  const nettest::Netns& node() const { return *node_; }
  const nettest::Netns& pod() const { return *pod_; }
  const LocalNodeOptions& options() const { return options_; }

  // Serves `pod` at its REST path (metadata.namespace / metadata.name).
  void PutPod(const nlohmann::json& pod);
  // One go-cni operation ("add", "check", "del") for the pod sandbox, run inside the node
  // namespace as containerd runs it on a node. For "add", stdout is {"ips": [...]}.
  testing_support::ProcessResult GoCni(const std::string& op, const std::string& pod_namespace,
                                       const std::string& pod_name) const;

 private:
  LocalNode() = default;
  LocalNodeOptions options_;
  std::string dir_, driver_;
  std::unique_ptr<nettest::Netns> node_, pod_;
  std::unique_ptr<kube::FakeApiServer> api_;
};

}  // namespace tern::e2e
