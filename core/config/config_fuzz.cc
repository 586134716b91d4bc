// Fuzzes what a proxy and the control plane read from users: a config snapshot and an Istio
// resource, from YAML (or JSON) text. Nothing may crash or hang; errors are fine.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/config/snapshot.h"
#include "core/istio/resource.h"
#include "core/yaml/yaml_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto doc = tern::ParseYaml(text);
  if (!doc.ok()) return 0;
  (void)tern::istio::ParseResource(*doc);
  (void)tern::config::ParseSnapshotJson(*doc);
  return 0;
}
