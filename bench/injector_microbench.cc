// CPU cost of the webhook's request path without sockets or TLS: parse the AdmissionReview,
// decide, inject, diff into a JSONPatch, base64, serialize (Google Benchmark).
#include <benchmark/benchmark.h>

#include "core/base/files.h"
#include "core/yaml/yaml_json.h"
#include "webhook/admission.h"
#include "webhook/admission_review_builder.h"

static void BM_HandleAdmissionReview(benchmark::State& state) {
  auto docs = tern::ParseYamlDocuments(*tern::ReadFile(TERN_SHARED_DIR "/compat/istio-inject/hello-probes.yaml"));
  nlohmann::json pod = tern::webhook::PodFromWorkload((*docs)[0], "bench");
  std::string body = tern::webhook::PodCreateReview(pod, "bench", "uid").dump();
  tern::MeshConfig mesh;
  for (auto _ : state) {
    auto answer = tern::webhook::HandleAdmissionReview(body, mesh);
    benchmark::DoNotOptimize(answer.body.data());
  }
}
BENCHMARK(BM_HandleAdmissionReview);
BENCHMARK_MAIN();
