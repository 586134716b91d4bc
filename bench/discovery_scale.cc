// ternd at a cluster's scale, as issue 16 sizes it: an in-process Kubernetes API server (FakeApiServer)
// holding SERVICES services and ENDPOINTS endpoint pods, ternd (a separate process, so its RSS and
// CPU are its own) watching it, PROXIES light clients holding one config stream each, and RATE
// endpoint changes a second for SECONDS. Each change sets one endpoint pod's label bench-seq to
// the change's number; a client that receives a snapshot holding seq N has received every change
// up to N. Prints change-to-received latency (p50/p99 over every change and every proxy), bytes
// received per change per proxy, snapshots per proxy, and ternd's RSS and CPU.
//   discovery_scale TERND_BINARY [SERVICES] [ENDPOINTS] [PROXIES] [RATE] [SECONDS]
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/base/files.h"
#include "core/base/proc_status.h"
#include "core/kube/fake_apiserver.h"
#include "core/kube/https_get.h"
#include "core/testing/subprocess.h"
#include "core/tls/x509.h"

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

template <class T>
T Must(tern::Result<T> r, const char* what) {
  if (!r.ok()) {
    std::fprintf(stderr, "discovery_scale: %s: %s\n", what, r.status().message().c_str());
    std::exit(1);
  }
  return std::move(r).value();
}
void Must(const tern::Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "discovery_scale: %s: %s\n", what, s.message().c_str());
    std::exit(1);
  }
}

// Field 14 + 15 of /proc/PID/stat: user + system ticks.
long CpuTicks(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  size_t at = s.rfind(')');
  std::vector<std::string> fields;
  for (size_t i = at + 2; i < s.size();) {
    size_t sp = s.find(' ', i);
    fields.push_back(s.substr(i, sp - i));
    if (sp == std::string::npos) break;
    i = sp + 1;
  }
  return fields.size() > 13 ? std::stol(fields[11]) + std::stol(fields[12]) : 0;
}

// The largest bench-seq in a snapshot's text (-1: none).
long LargestSeq(std::string_view text) {
  long best = -1;
  const std::string_view key = "\"bench-seq\":\"";
  for (size_t at = text.find(key); at != std::string_view::npos; at = text.find(key, at + 1)) {
    best = std::max(best, std::strtol(text.data() + at + key.size(), nullptr, 10));
  }
  return best;
}

json EndpointPod(int j, int services, long seq) {
  json labels = {{"app", "svc-" + std::to_string(j % services)}, {"version", j % 2 ? "v2" : "v1"}};
  if (seq >= 0) labels["bench-seq"] = std::to_string(seq);
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata", {{"labels", labels}}},
          {"spec", {{"serviceAccountName", "svc"}, {"containers", {{{"name", "app"}, {"ports", {{{"containerPort", 8080}}}}}}}}},
          {"status", {{"podIP", "10." + std::to_string(100 + j / 65536) + "." + std::to_string(j / 256 % 256) + "." +
                                    std::to_string(j % 256)},
                      {"phase", "Running"},
                      {"conditions", {{{"type", "Ready"}, {"status", "True"}}}}}}};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: discovery_scale TERND_BINARY [SERVICES] [ENDPOINTS] [PROXIES] [RATE] [SECONDS]\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  const std::string ternd = argv[1];
  const int services = argc > 2 ? std::atoi(argv[2]) : 1000;
  const int endpoints = argc > 3 ? std::atoi(argv[3]) : 10000;
  const int proxies = argc > 4 ? std::atoi(argv[4]) : 100;
  const double rate = argc > 5 ? std::atof(argv[5]) : 100;
  const int seconds = argc > 6 ? std::atoi(argv[6]) : 20;
  char tmpl[] = "/tmp/tern-discovery-scale-XXXXXX";
  const std::string dir = mkdtemp(tmpl);

  // The cluster.
  tern::kube::FakeApiServer api("ternd-token");
  const std::string ns = "/api/v1/namespaces/mesh";
  api.Put("/api/v1/namespaces/mesh", {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", json::object()}});
  for (int i = 0; i < services; ++i) {
    api.Put(ns + "/services/svc-" + std::to_string(i),
            {{"apiVersion", "v1"}, {"kind", "Service"}, {"metadata", json::object()},
             {"spec", {{"clusterIP", "10.96." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1)},
                       {"selector", {{"app", "svc-" + std::to_string(i)}}},
                       {"ports", {{{"name", "http"}, {"port", 8080}}}}}}});
  }
  for (int j = 0; j < endpoints; ++j) api.Put(ns + "/pods/ep-" + std::to_string(j), EndpointPod(j, services, -1));
  for (int k = 0; k < proxies; ++k) {
    const std::string name = "proxy-" + std::to_string(k);
    api.Put(ns + "/pods/" + name, {{"apiVersion", "v1"}, {"kind", "Pod"}, {"metadata", {{"labels", {{"app", "client"}}}}},
                                   {"spec", {{"serviceAccountName", "client"}}}, {"status", {{"podIP", "127.0.0.1"}}}});
    api.AddToken("token-" + std::to_string(k), "mesh", "client", name, {"istio-ca"});
  }

  // ternd, its own process.
  tern::PemPair ca = Must(tern::CreateSelfSigned({.common_name = "bench CA", .is_ca = true}), "CA");
  tern::PemPair leaf = Must(tern::IssueCertificate(ca, {.common_name = "ternd", .ip_addresses = {"127.0.0.1"}}), "cert");
  Must(tern::WriteFileAtomically(dir + "/ca.crt", ca.cert_pem), "ca");
  Must(tern::WriteFileAtomically(dir + "/tls.crt", leaf.cert_pem), "cert");
  Must(tern::WriteFileAtomically(dir + "/tls.key", leaf.key_pem, 0600), "key");
  Must(tern::WriteFileAtomically(dir + "/kubeconfig", api.Kubeconfig()), "kubeconfig");
  const pid_t pid = tern::testing_support::Spawn(
      {ternd, "--listen", "127.0.0.1:0", "--port-file", dir + "/port", "--tls-cert", dir + "/tls.crt", "--tls-key",
       dir + "/tls.key", "--kubeconfig", dir + "/kubeconfig", "--log-level", "error", "--max-connections", "10000"},
      {}, dir + "/ternd.log");
  int port = 0;
  for (int i = 0; i < 200 && port == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto text = tern::ReadFile(dir + "/port");
    if (text.ok()) port = std::atoi(text->c_str());
  }
  if (port == 0) {
    std::fprintf(stderr, "discovery_scale: ternd did not start (%s/ternd.log)\n", dir.c_str());
    return 1;
  }

  // The proxies: one stream each, reading snapshots as they come.
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  SSL_CTX_load_verify_locations(ctx, (dir + "/ca.crt").c_str(), nullptr);
  // Until ternd has its first model (every kind listed).
  const auto listed = Clock::now();
  for (bool ready = false; !ready && Clock::now() - listed < std::chrono::seconds(120);) {
    auto r = tern::kube::HttpsGet(ctx, {"127.0.0.1", port}, "/debug/resources", {}, std::chrono::seconds(5), 256 << 20);
    ready = r.ok() && r->body.find("\"generation\"") != std::string::npos;
    if (!ready) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const double model_s = std::chrono::duration<double>(Clock::now() - listed).count();
  int stop[2];
  if (pipe(stop) != 0) return 1;
  std::string first_failure;
  std::mutex mu;
  std::vector<Clock::time_point> changed_at;  // by seq
  std::vector<double> latencies_ms;
  std::atomic<uint64_t> bytes{0}, snapshots{0};
  std::atomic<int> connected{0}, failed{0};
  std::vector<std::thread> clients;
  for (int k = 0; k < proxies; ++k) {
    clients.emplace_back([&, k] {
      long seen = -1;
      bool first = true;
      tern::kube::LineStreamLimits limits;
      limits.head_deadline = std::chrono::seconds(60);
      limits.idle = std::chrono::seconds(seconds + 120);
      limits.max_line = 256 << 20;
      auto r = tern::kube::HttpsGetLines(
          ctx, {"127.0.0.1", port}, "/v1/snapshots?namespace=mesh&pod=proxy-" + std::to_string(k),
          {"Authorization: Bearer token-" + std::to_string(k)}, limits, stop[0], [&](std::string_view line, bool) {
            const auto now = Clock::now();
            bytes += line.size() + 1;
            ++snapshots;
            if (first) {
              first = false;
              ++connected;
            }
            long seq = LargestSeq(line);
            std::lock_guard<std::mutex> lock(mu);
            for (long s = seen + 1; s <= seq && s < static_cast<long>(changed_at.size()); ++s) {
              latencies_ms.push_back(std::chrono::duration<double, std::milli>(now - changed_at[static_cast<size_t>(s)]).count());
            }
            seen = std::max(seen, seq);
            return true;
          });
      if (!r.ok() || (r->status != 200 && !r->stopped)) {
        ++failed;
        std::lock_guard<std::mutex> lock(mu);
        if (first_failure.empty()) first_failure = r.ok() ? std::to_string(r->status) + " " + r->body : r.status().message();
      }
    });
  }
  const auto connect_start = Clock::now();
  while (connected < proxies && failed == 0 && Clock::now() - connect_start < std::chrono::seconds(120)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const double connect_s = std::chrono::duration<double>(Clock::now() - connect_start).count();
  const long rss_connected = static_cast<long>(tern::ProcStatusKb("VmRSS", pid));
  const uint64_t bytes_before = bytes, snapshots_before = snapshots;

  // The changes.
  const long ticks_before = CpuTicks(pid);
  const auto start = Clock::now();
  const int total = static_cast<int>(rate * seconds);
  for (int n = 0; n < total; ++n) {
    std::this_thread::sleep_until(start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(n / rate)));
    {
      std::lock_guard<std::mutex> lock(mu);
      changed_at.push_back(Clock::now());
    }
    const int j = n % endpoints;
    api.Put(ns + "/pods/ep-" + std::to_string(j), EndpointPod(j, services, n));
  }
  // Until every proxy has the last change, or 30 s.
  const auto drain_until = Clock::now() + std::chrono::seconds(30);
  size_t due = static_cast<size_t>(total) * static_cast<size_t>(connected.load());
  while (Clock::now() < drain_until) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (latencies_ms.size() >= due) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  const long ticks = CpuTicks(pid) - ticks_before;
  const long rss_end = static_cast<long>(tern::ProcStatusKb("VmRSS", pid));
  if (write(stop[1], "x", 1) != 1) return 1;
  for (auto& c : clients) c.join();
  kill(pid, SIGTERM);
  waitpid(pid, nullptr, 0);

  std::vector<double> l = latencies_ms;
  std::sort(l.begin(), l.end());
  auto pct = [&](double p) { return l.empty() ? -1.0 : l[std::min(l.size() - 1, static_cast<size_t>(p * static_cast<double>(l.size())))]; };
  const double per_change_per_proxy =
      total && connected ? static_cast<double>(bytes - bytes_before) / total / connected : 0;
  std::printf("cluster: %d services, %d endpoints; ternd's first model after %.1f s\n", services, endpoints, model_s);
  if (!first_failure.empty()) std::printf("a stream failed: %s\n", first_failure.c_str());
  std::printf("%d proxies connected (%d failed) in %.1f s; first snapshots %.0f KB each\n", connected.load(), failed.load(),
              connect_s,
              connected ? static_cast<double>(bytes_before) / static_cast<double>(snapshots_before) / 1024 : 0);
  std::printf("changes: %d at %.0f/s; received %zu of %zu (change, proxy) pairs in %.1f s\n", total, rate, l.size(), due,
              elapsed);
  std::printf("change to received: p50 %.0f ms, p99 %.0f ms, max %.0f ms\n", pct(0.5), pct(0.99), l.empty() ? -1.0 : l.back());
  std::printf("bytes per change per proxy: %.0f; snapshots per proxy: %.1f\n", per_change_per_proxy,
              connected ? static_cast<double>(snapshots - snapshots_before) / connected : 0);
  std::printf("ternd: RSS %ld KB with every proxy connected, %ld KB at the end; CPU %.2f s (%.0f%% of a core)\n",
              rss_connected, rss_end, static_cast<double>(ticks) / static_cast<double>(sysconf(_SC_CLK_TCK)),
              100.0 * static_cast<double>(ticks) / static_cast<double>(sysconf(_SC_CLK_TCK)) / elapsed);
  SSL_CTX_free(ctx);
  std::system(("rm -rf " + dir).c_str());
  return 0;
}
