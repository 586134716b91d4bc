// The CNI spec's error result: a code, a message and optional details, printed as JSON on
// stdout with a non-zero exit. Codes below 100 are the spec's; 100 and up are Tern's own.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace tern::cni {

enum ErrorCode : int {
  kIncompatibleVersion = 1,
  kUnsupportedField = 2,
  kUnknownContainer = 3,
  kInvalidEnvironment = 4,
  kIoFailure = 5,
  kDecodeFailure = 6,
  kInvalidConfig = 7,
  kTryAgainLater = 11,
  kPluginNotAvailable = 50,
  // Tern's codes.
  kKubernetesApi = 100,      // the API server answered, and refused (401, 403, 404)
  kInvalidPodSettings = 101, // the pod's capture annotations do not parse
  kCaptureFailed = 102,      // the kernel refused the ruleset, or CHECK found it missing/altered
};

struct Error {
  int code = 0;
  std::string msg;
  std::string details;

  nlohmann::json ToJson(const std::string& cni_version) const {
    nlohmann::json j = {{"cniVersion", cni_version}, {"code", code}, {"msg", msg}};
    if (!details.empty()) j["details"] = details;
    return j;
  }
};

}  // namespace tern::cni
