#include "core/jsonpatch/json_patch.h"

#include <gtest/gtest.h>

namespace tern {
namespace {

TEST(JsonPatch, EscapesPointerTokens) {
  EXPECT_EQ(EscapePointerToken("sidecar.istio.io/status"), "sidecar.istio.io~1status");
  EXPECT_EQ(EscapePointerToken("a~b/c"), "a~0b~1c");
}

// The generated patch, applied by an independent RFC 6902 implementation (nlohmann's), must give
// exactly the target document.
TEST(JsonPatch, PatchTurnsFromIntoTo) {
  auto from = nlohmann::json::parse(R"({"metadata":{"annotations":{"a/b":"1","x~y":"2"},"labels":{"app":"x"}},
      "spec":{"containers":[{"name":"app"}],"hostNetwork":false}})");
  auto to = nlohmann::json::parse(R"({"metadata":{"annotations":{"a/b":"changed","new/key":"3"},"labels":{"app":"x"}},
      "spec":{"containers":[{"name":"app"},{"name":"istio-proxy"}],"initContainers":[{"name":"istio-init"}]}})");
  auto patch = CreatePatch(from, to);
  EXPECT_EQ(from.patch(patch), to) << patch.dump(2);
  bool saw_escaped = false;
  for (const auto& op : patch) saw_escaped |= op["path"] == "/metadata/annotations/x~0y";
  EXPECT_TRUE(saw_escaped) << patch.dump(2);
  EXPECT_TRUE(CreatePatch(to, to).empty());
}

}  // namespace
}  // namespace tern
