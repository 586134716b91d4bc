// Fuzz target: any bytes as an AdmissionReview body. The handler must answer (400 or a
// review), never crash, and every injected answer must carry a patch that applies.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/base/base64.h"
#include "webhook/admission.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const tern::MeshConfig mesh;
  std::string_view body(reinterpret_cast<const char*>(data), size);
  tern::webhook::AdmissionAnswer a = tern::webhook::HandleAdmissionReview(body, mesh);
  if (a.http_status != 200 && a.http_status != 400) std::abort();
  if (a.outcome == "injected") {
    auto review = nlohmann::json::parse(a.body);
    auto patch = tern::Base64Decode(review["response"]["patch"].get<std::string>());
    if (!patch) std::abort();
    auto pod = nlohmann::json::parse(body)["request"]["object"];
    (void)pod.patch(nlohmann::json::parse(*patch));  // throws (and so crashes the fuzzer) if invalid
  }
  return 0;
}
