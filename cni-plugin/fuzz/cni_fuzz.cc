// Fuzzes what tern-cni reads from the runtime: the network configuration on stdin and the
// prevResult inside it, converted to every supported version, and the API server's HTTP answer.
// Nothing may crash, and a converted result must convert back without error.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "cni-plugin/cni_version.h"
#include "cni-plugin/net_conf.h"
#include "core/kube/https_get.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)tern::kube::ParseHttpResponse(std::string(text));
  tern::cni::NetConf conf;
  if (tern::cni::ParseNetConf(text, &conf) || !conf.prev_result) return 0;
  for (const auto& target : tern::cni::SupportedVersions()) {
    nlohmann::json out, back;
    if (tern::cni::ConvertResult(*conf.prev_result, conf.cni_version, target, "prevResult", &out)) continue;
    if (tern::cni::ConvertResult(out, target, conf.cni_version, "prevResult", &back)) std::abort();
  }
  return 0;
}
