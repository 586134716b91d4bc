// Fuzz target: any bytes as mesh config / manifests YAML. Parsing must fail with a message or
// succeed, and whatever parses must survive a YAML round trip unchanged.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/meshconfig/mesh_config.h"
#include "core/yaml/yaml_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto docs = tern::ParseYamlDocuments(text);
  if (docs.ok()) {
    for (const auto& doc : *docs) {
      // Alias expansion may legitimately build up to the parser's node budget; round-tripping
      // such a document is slow and memory-hungry under ASan without testing anything new.
      if (doc.dump().size() > 64 * 1024) continue;
      auto back = tern::ParseYaml(tern::ToYaml(doc));
      if (!back.ok() || *back != doc) std::abort();
    }
  } else if (docs.status().message().empty()) {
    std::abort();
  }
  auto mesh = tern::ParseMeshConfig(text);
  if (!mesh.ok() && mesh.status().message().empty()) std::abort();
  return 0;
}
