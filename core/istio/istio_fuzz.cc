// Fuzzes the Istio resource parser from YAML text, as ternd and the proxy read users' resources.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/base/json_limits.h"
#include "core/istio/resource.h"
#include "core/yaml/yaml_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto doc = tern::ParseYaml(text);
  if (doc.ok()) (void)tern::istio::ParseResource(*doc);
  return 0;
}
