// tern-cni's network configuration: the object the runtime writes on stdin, which is the
// plugin's entry in the node's conflist plus cniVersion, name and (chained) prevResult.
//
//   {"type": "tern-cni",
//    "kubernetes": {"kubeconfig": "/etc/cni/net.d/tern-cni.kubeconfig",
//                   "excludeNamespaces": ["kube-system"], "timeoutMs": 5000}}
//
// Fields the runtime adds (runtimeConfig, args, capabilities) are ignored; unknown fields under
// "kubernetes", which only Tern defines, are errors so that a typo does not silently disable
// capture.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "cni-plugin/cni_error.h"

namespace tern::cni {

struct NetConf {
  std::string cni_version;
  std::string name;
  std::string type;
  std::optional<nlohmann::json> prev_result;
  std::string kubeconfig;
  std::vector<std::string> exclude_namespaces;
  std::chrono::milliseconds api_timeout{5000};
};

// The cniVersion to answer in when the configuration itself cannot be read.
std::string VersionForErrors(std::string_view stdin_bytes);

std::optional<Error> ParseNetConf(std::string_view stdin_bytes, NetConf* out);

}  // namespace tern::cni
