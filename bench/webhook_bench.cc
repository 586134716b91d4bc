// Drives a running ternd's /inject over HTTPS with keep-alive: N requests split over C
// connections (one thread each), every response checked for a patch. Prints injections/s and
// latency percentiles. Started by bench/webhook.sh, which also starts ternd.
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "core/base/files.h"
#include "core/yaml/yaml_json.h"
#include "webhook/admission_review_builder.h"

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: webhook_bench HOST:PORT CA_FILE POD_YAML REQUESTS [CONNECTIONS]\n");
    return 2;
  }
  std::string target = argv[1], ca = argv[2];
  int total = std::atoi(argv[4]);
  int connections = argc > 5 ? std::atoi(argv[5]) : 16;
  auto docs = tern::ParseYamlDocuments(*tern::ReadFile(argv[3]));
  if (!docs.ok() || docs->empty()) return std::fprintf(stderr, "cannot read %s\n", argv[3]), 1;
  nlohmann::json pod = tern::webhook::PodFromWorkload((*docs)[0], "bench");
  std::string body = tern::webhook::PodCreateReview(pod, "bench", "bench-uid").dump();
  std::string host = target.substr(0, target.rfind(':'));
  int port = std::stoi(target.substr(target.rfind(':') + 1));

  std::vector<std::vector<double>> latencies(connections);
  std::atomic<int> failures{0};
  auto worker = [&](int id) {
    httplib::SSLClient client(host, port);
    client.set_ca_cert_path(ca.c_str());
    client.enable_server_certificate_verification(true);
    client.set_keep_alive(true);
    client.set_tcp_nodelay(true);
    client.set_read_timeout(10, 0);
    int mine = total / connections + (id < total % connections ? 1 : 0);
    latencies[id].reserve(mine);
    for (int i = 0; i < mine; ++i) {
      auto start = std::chrono::steady_clock::now();
      auto res = client.Post("/inject", body, "application/json");
      auto us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
      if (!res || res->status != 200 || res->body.find("\"patch\"") == std::string::npos) {
        failures.fetch_add(1);
        continue;
      }
      latencies[id].push_back(us);
    }
  };
  // Warm-up: handshakes and first allocations are not what is measured.
  {
    std::vector<std::thread> warm;
    int saved = total;
    total = connections * 10;
    for (int i = 0; i < connections; ++i) warm.emplace_back(worker, i);
    for (auto& t : warm) t.join();
    total = saved;
    for (auto& l : latencies) l.clear();
  }
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int i = 0; i < connections; ++i) threads.emplace_back(worker, i);
  for (auto& t : threads) t.join();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::vector<double> all;
  for (const auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) { return all.empty() ? 0.0 : all[std::min(all.size() - 1, size_t(p * all.size()))]; };
  std::printf("webhook: %d requests, %d connections, %d failed\n", total, connections, failures.load());
  std::printf("  injections/s %.0f\n  p50 %.3f ms\n  p99 %.3f ms\n  max %.3f ms\n", all.size() / seconds,
              pct(0.50) / 1000, pct(0.99) / 1000, all.empty() ? 0.0 : all.back() / 1000);
  return failures.load() == 0 ? 0 : 1;
}
