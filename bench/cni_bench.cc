// tern-cni ADD as the runtime sees it: wall time of one plugin process per call, its
// configuration on stdin, reading the pod from an HTTPS API (the in-test fake API server,
// TLS handshake and token included) and programming a REDIRECT ruleset into a network
// namespace made here. Prints p50/p90/p99/max for ADD, CHECK and DEL, the in-process apply
// time of the ruleset alone, and the same ruleset applied the way an exec-based plugin does it
// (`ip netns exec <ns> nft -f`), as the ratio baseline. Root only; loopback and the bench's own
// namespace only.
//   cni_bench TERN_CNI_BINARY [RUNS] [API_DELAY_MS]
// API_DELAY_MS delays every API answer, standing in for the round trip to a remote API server.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cni-plugin/testing/cni_mode_pod.h"
#include "core/base/files.h"
#include "core/capture/applier.h"
#include "core/capture/nft_render.h"
#include "core/capture/plan.h"
#include "core/kube/fake_apiserver.h"
#include "core/testing/subprocess.h"

namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

// A step the measurement depends on: its failure ends the run with its reason.
void Must(const tern::Status& s, const char* what) {
  if (s.ok()) return;
  std::fprintf(stderr, "cni_bench: %s: %s\n", what, s.message().c_str());
  std::exit(1);
}

struct Stats {
  double p50, p90, p99, max;
};

Stats Summarize(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  auto at = [&](double q) { return ms[std::min(ms.size() - 1, static_cast<size_t>(q * ms.size()))]; };
  return {at(0.50), at(0.90), at(0.99), ms.back()};
}

void Print(const char* what, const Stats& s) {
  std::printf("  %-34s p50 %7.2f ms  p90 %7.2f ms  p99 %7.2f ms  max %7.2f ms\n", what, s.p50, s.p90, s.p99, s.max);
}

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: cni_bench TERN_CNI_BINARY [RUNS] [API_DELAY_MS]\n");
    return 2;
  }
  if (geteuid() != 0) {
    std::fprintf(stderr, "cni_bench: needs root (network namespaces)\n");
    return 2;
  }
  const std::string plugin = argv[1];
  const int runs = argc > 2 ? std::max(10, std::atoi(argv[2])) : 200;
  const int api_delay_ms = argc > 3 ? std::max(0, std::atoi(argv[3])) : 0;
  const std::string ns = "tern-bench-" + std::to_string(getpid());
  const std::string netns = "/var/run/netns/" + ns;
  char tmpl[] = "/tmp/tern-cni-bench-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  if (std::system(("ip netns add " + ns + " && ip -n " + ns + " link set lo up").c_str()) != 0) return 1;

  tern::kube::FakeApiServer api("bench-token");
  api.set_delay(std::chrono::milliseconds(api_delay_ms));
  api.Put("/api/v1/namespaces/my-app/pods/web",
          tern::cni::testing::CniModePod("my-app", "web",
                                         {{"traffic.sidecar.istio.io/excludeOutboundIPRanges", "169.254.169.254/32"},
                                          {"traffic.sidecar.istio.io/excludeOutboundPorts", "8081"}}));
  Must(tern::WriteFileAtomically(dir + "/kubeconfig", api.Kubeconfig()), "writing the kubeconfig");
  json conf = {{"cniVersion", "1.0.0"},
               {"name", "k8s-pod-network"},
               {"type", "tern-cni"},
               {"kubernetes", {{"kubeconfig", dir + "/kubeconfig"}}},
               {"prevResult",
                {{"cniVersion", "1.0.0"},
                 {"interfaces", {{{"name", "eth0"}, {"sandbox", netns}}}},
                 {"ips", {{{"interface", 0}, {"address", "10.22.0.5/24"}}}}}}};
  std::map<std::string, std::string> env = {
      {"CNI_CONTAINERID", "bench"}, {"CNI_NETNS", netns}, {"CNI_IFNAME", "eth0"},
      {"CNI_PATH", "/opt/cni/bin"}, {"CNI_ARGS", "K8S_POD_NAMESPACE=my-app;K8S_POD_NAME=web"}};
  const std::string stdin_text = conf.dump();

  std::vector<double> add, check, del, version, bridge_version, add_api, add_apply;
  int failures = 0;
  for (int i = 0; i < runs; ++i) {
    // The floors: starting the plugin process and answering VERSION; the same for the reference
    // bridge plugin (Go), which every pod sandbox runs before tern-cni.
    auto v = tern::testing_support::RunProcess({plugin}, {{"CNI_COMMAND", "VERSION"}}, "{\"cniVersion\":\"1.0.0\"}", 10s);
    if (v.exit_code == 0) version.push_back(std::chrono::duration<double, std::milli>(v.wall).count());
    auto b = tern::testing_support::RunProcess({"/usr/lib/cni/bridge"}, {{"CNI_COMMAND", "VERSION"}},
                                               "{\"cniVersion\":\"1.0.0\"}", 10s);
    if (b.exit_code == 0) bridge_version.push_back(std::chrono::duration<double, std::milli>(b.wall).count());
    for (auto [command, samples] : {std::pair{"ADD", &add}, std::pair{"CHECK", &check}, std::pair{"DEL", &del}}) {
      env["CNI_COMMAND"] = command;
      auto r = tern::testing_support::RunProcess({plugin}, env, stdin_text, 10s);
      if (r.exit_code != 0) {
        if (++failures <= 3) std::fprintf(stderr, "%s failed: %s%s\n", command, r.out.c_str(), r.err.c_str());
        continue;
      }
      samples->push_back(std::chrono::duration<double, std::milli>(r.wall).count());
      // tern-cni logs "... (API x ms, apply y ms)" for every ADD.
      double api_ms = 0, apply_ms = 0;
      size_t at = r.err.find("(API ");
      if (samples == &add && at != std::string::npos &&
          std::sscanf(r.err.c_str() + at, "(API %lf ms, apply %lf ms)", &api_ms, &apply_ms) == 2) {
        add_api.push_back(api_ms);
        add_apply.push_back(apply_ms);
      }
    }
  }

  // The ruleset alone: in-process (one libnftables transaction after setns) ...
  tern::capture::CaptureConfig config;
  config.exclude_outbound_ports.ports = {8081};
  tern::capture::Ruleset plan = tern::capture::BuildPlan(config);
  auto applier = tern::capture::MakeKernelApplier(netns);
  std::vector<double> apply, verify, exec_nft;
  for (int i = 0; i < runs; ++i) {
    auto t0 = Clock::now();
    tern::Status s = applier->Apply(plan);
    auto t1 = Clock::now();
    tern::Status v = applier->Verify(plan);
    auto t2 = Clock::now();
    if (!s.ok() || !v.ok()) {
      std::fprintf(stderr, "apply/verify failed: %s %s\n", s.message().c_str(), v.message().c_str());
      return 1;
    }
    apply.push_back(Ms(t1 - t0));
    verify.push_back(Ms(t2 - t1));
  }
  Must(applier->Remove(plan), "removing the capture");
  // ... and the way an exec-based plugin applies it: a process that enters the namespace and
  // runs nft on a file.
  Must(tern::WriteFileAtomically(dir + "/ruleset.nft", tern::capture::RenderReplaceTransaction(plan)), "writing the ruleset");
  for (int i = 0; i < runs; ++i) {
    auto r = tern::testing_support::RunProcess({"/usr/sbin/ip", "netns", "exec", ns, "/usr/sbin/nft", "-f",
                                                dir + "/ruleset.nft"},
                                               {{"PATH", "/usr/sbin:/usr/bin:/sbin:/bin"}}, "", 10s);
    if (r.exit_code != 0) {
      std::fprintf(stderr, "nft -f failed: %s\n", r.err.c_str());
      return 1;
    }
    exec_nft.push_back(std::chrono::duration<double, std::milli>(r.wall).count());
  }

  std::system(("ip netns del " + ns).c_str());
  std::system(("rm -rf " + dir).c_str());
  if (add.empty() || check.empty() || del.empty()) return 1;
  std::printf("tern-cni, %d runs each (one process per call, pod read over HTTPS every ADD/CHECK, API answers "
              "delayed %d ms)\n", runs, api_delay_ms);
  Stats floor = Summarize(version), bridge = Summarize(bridge_version);
  Print("VERSION (process start only)", floor);
  Print("reference bridge plugin VERSION", bridge);
  Stats a = Summarize(add);
  Print("ADD (API GET + apply)", a);
  if (!add_api.empty()) {
    Print("  of which: pod read (TLS, GET)", Summarize(add_api));
    Print("  of which: ruleset apply (cold)", Summarize(add_apply));
  }
  Print("CHECK (API GET + verify)", Summarize(check));
  Print("DEL (remove, no API)", Summarize(del));
  Stats ap = Summarize(apply), ex = Summarize(exec_nft);
  Print("ruleset apply, in process", ap);
  Print("ruleset verify, in process", Summarize(verify));
  Print("ruleset apply, ip netns exec nft -f", ex);
  std::printf("  ADD p99 vs the 20 ms goal: %.2fx of budget%s\n", a.p99 / 20.0, a.p99 < 20.0 ? " (met)" : " (MISSED)");
  std::printf("  ADD p50 / bare process start p50: %.2fx; / bridge plugin start p50: %.2fx\n", a.p50 / floor.p50,
              a.p50 / bridge.p50);
  std::printf("  in-process apply vs exec nft -f: p50 %.2fx, p99 %.2fx faster\n", ex.p50 / ap.p50, ex.p99 / ap.p99);
  std::printf("  failed calls: %d\n", failures);
  return failures == 0 ? 0 : 1;
}
