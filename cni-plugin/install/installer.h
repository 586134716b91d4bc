// tern-cni-install: what the node DaemonSet's container does. It copies tern-cni into the
// node's CNI bin dir, writes the plugin's kubeconfig from its own service account, and chains
// tern-cni last in the node's CNI configuration; it keeps all three in place (the primary CNI
// may rewrite its file, the token rotates) and undoes them when the pod is stopped.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/base/status.h"
#include "core/kube/client.h"

namespace tern::cni {

struct InstallOptions {
  std::string plugin_source = "/opt/tern/bin/tern-cni";  // the binary in this image
  std::string bin_dir = "/host/opt/cni/bin";              // the node's CNI bin dir, mounted
  std::string conf_dir = "/host/etc/cni/net.d";           // the node's CNI conf dir, mounted
  std::string host_conf_dir = "/etc/cni/net.d";           // conf_dir as the node sees it
  std::string kubeconfig_name = "tern-cni.kubeconfig";
  std::string secrets_dir = "/var/run/secrets/kubernetes.io/serviceaccount";
  std::vector<std::string> exclude_namespaces = {"kube-system", "tern-system"};
  int api_timeout_ms = 5000;
};

// What one pass changed, for the log.
struct InstallReport {
  bool binary_written = false, kubeconfig_written = false, config_written = false;
  std::string config_file;  // the CNI configuration tern-cni is chained into
  bool changed() const { return binary_written || kubeconfig_written || config_written; }
};

class Installer {
 public:
  Installer(InstallOptions options, kube::ClusterConfig cluster);

  // Brings the node to the installed state; writes only what differs, each file atomically.
  Result<InstallReport> Install();
  // Removes tern-cni from every CNI configuration in conf_dir, then its kubeconfig and binary.
  Status Uninstall();
  // Succeeds when the node is in the installed state (for a readiness probe).
  Status Check();

  // The entry chained into the configuration.
  nlohmann::json PluginEntry() const;

 private:
  Result<std::string> ConfigFile() const;
  std::string KubeconfigText() const;

  InstallOptions options_;
  kube::ClusterConfig cluster_;
};

}  // namespace tern::cni
