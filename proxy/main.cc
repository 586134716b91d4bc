// tern-proxy: the sidecar. Starts on the empty snapshot (captured traffic passes through to its
// original destination), loads --config when given and re-reads it when it changes (a refused
// snapshot keeps the last good one), and serves until POST /quitquitquit or SIGTERM (which drains:
// no new connections, open ones get the drain duration to finish).
#include <algorithm>
#include <malloc.h>
#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "core/base/files.h"
#include "core/log/logger.h"
#include "proxy/config_store.h"
#include "proxy/http1_session.h"
#include "proxy/pod_settings.h"
#include "proxy/server.h"

namespace {

constexpr const char* kUsage = R"(usage: tern-proxy [flags]
  --config FILE               config snapshot (YAML or JSON), re-read when it changes
  --concurrency N             worker threads (2)
  --interception-mode MODE    REDIRECT or TPROXY (env ISTIO_META_INTERCEPTION_MODE; REDIRECT)
  --log-level LEVEL           debug|info|warn|error (info)
  --pod-annotations FILE      the pod's annotations as the downward API mounts them
                              (/etc/istio/pod/annotations): proxy.istio.io/config concurrency,
                              terminationDrainDuration (5s), logLevel; sidecar.istio.io/logLevel;
                              tern.dev/rate-limit; flags given here win
  --header-timeout-ms N       an HTTP/1.1 request's header must arrive whole within it (15000)
  --outbound-port N --inbound-port N --admin-port N --health-port N --stats-port N
                              (15001 15006 15000 15021 15090; 0 picks a free port)
)";

bool Number(const std::string& text, long lo, long hi, long* out) {
  char* end = nullptr;
  long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end || v < lo || v > hi) return false;
  *out = v;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  // A proxy's heap churns: every request's buffers and coroutine frames are freed when it ends.
  // glibc hands the free top of a heap back to the kernel once it passes a threshold it keeps
  // adjusting, and the next burst faults the same pages in again (measured under h2load: up to
  // 0.23 page faults per request, each several microseconds in a VM). Fixed thresholds keep up
  // to kHeapRetained of free heap per arena instead; memory is still given back past it, and
  // after a config load (malloc_trim below).
  constexpr int kHeapRetained = 8 << 20;
  constexpr int kMmapFrom = 1 << 20;  // fixed too (a fixed trim threshold freezes it at 128 KiB)
  mallopt(M_TRIM_THRESHOLD, kHeapRetained);
  mallopt(M_MMAP_THRESHOLD, kMmapFrom);
  constexpr int kTrimAfterClosing = 256;  // connections closed since the peak, or parked

  tern::proxy::ServerOptions options;
  std::string config_path, level = "info", pod_annotations = "/etc/istio/pod/annotations";
  bool concurrency_flag = false, level_flag = false;
  const char* mode_env = std::getenv("ISTIO_META_INTERCEPTION_MODE");
  std::string mode = mode_env ? mode_env : "REDIRECT";
  std::map<std::string, uint16_t*> ports = {{"--outbound-port", &options.outbound_port},
                                            {"--inbound-port", &options.inbound_port},
                                            {"--admin-port", &options.admin_port},
                                            {"--health-port", &options.health_port},
                                            {"--stats-port", &options.stats_port}};
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i], value;
    if (flag == "-h" || flag == "--help") {
      std::cout << kUsage;
      return 0;
    }
    if (size_t eq = flag.find('='); eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      std::cerr << "tern-proxy: " << flag << ": needs a value\n" << kUsage;
      return 2;
    }
    long n = 0;
    if (flag == "--config") {
      config_path = value;
    } else if (flag == "--concurrency" && Number(value, 1, 256, &n)) {
      options.workers = static_cast<int>(n);
      concurrency_flag = true;
    } else if (flag == "--interception-mode" && (value == "REDIRECT" || value == "TPROXY")) {
      mode = value;
    } else if (flag == "--log-level") {
      level = value;
      level_flag = true;
    } else if (flag == "--header-timeout-ms" && Number(value, 1, 3600000, &n)) {
      options.header_timeout = std::chrono::milliseconds(n);
    } else if (flag == "--pod-annotations") {
      pod_annotations = value;
    } else if (ports.count(flag) && Number(value, 0, 65535, &n)) {
      *ports[flag] = static_cast<uint16_t>(n);
    } else {
      std::cerr << "tern-proxy: " << flag << ": invalid value \"" << value << "\"\n" << kUsage;
      return 2;
    }
  }
  tern::LogLevel log_level;
  if (!tern::ParseLogLevel(level, &log_level)) {
    std::cerr << "tern-proxy: --log-level: \"" << level << "\" is not one of debug, info, warn, error\n";
    return 2;
  }
  options.tproxy = mode == "TPROXY";
  tern::Logger log(2, log_level);
  // Istio's terminationDrainDuration default: how long open connections get to finish on SIGTERM.
  std::chrono::milliseconds drain{5000};

  // The pod's own tuning; a bad value is reported and ignored.
  if (auto text = tern::ReadFile(pod_annotations); text.ok()) {
    std::vector<std::string> problems;
    tern::proxy::PodSettings pod = tern::proxy::SettingsFromAnnotations(tern::proxy::ParseDownwardApiFile(*text, &problems));
    for (const auto& p : pod.problems) problems.push_back(p);
    for (const auto& p : problems) log.Warn("pod annotation ignored", {{"file", pod_annotations}, {"problem", p}});
    if (pod.concurrency && !concurrency_flag) options.workers = *pod.concurrency;
    if (pod.log_level && !level_flag) log.set_level(*pod.log_level);
    if (pod.drain) drain = *pod.drain;
    options.inbound_rate_limit = pod.rate_limit;
  }

  tern::proxy::ConfigStore store;
  tern::FileStamp stamp;
  auto load = [&] {
    auto text = tern::ReadFile(config_path);
    tern::Status s = text.ok() ? store.Load(*text) : text.status();
    // Parsing makes short-lived trees many times the snapshot's size; give that memory back.
    malloc_trim(0);
    if (s.ok()) {
      log.Info("config accepted", {{"file", config_path}, {"version", store.Current()->snapshot().version}});
    } else {
      log.Error("config refused; the last good one stays", {{"file", config_path}, {"error", s.message()}});
    }
  };
  if (!config_path.empty()) {
    stamp = tern::StampOf(config_path);
    load();
  }

  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  sigprocmask(SIG_BLOCK, &stop, nullptr);  // before the workers start: they inherit the mask

  tern::proxy::Server server(options, store, log);
  tern::Status started = server.Start();
  if (!started.ok()) {
    std::cerr << "tern-proxy: " << started.message() << "\n";
    return 1;
  }
  log.Info("serving", {{"outbound", server.port(tern::proxy::ListenerKind::kOutbound)},
                       {"inbound", server.port(tern::proxy::ListenerKind::kInbound)},
                       {"admin", server.port(tern::proxy::ListenerKind::kAdmin)},
                       {"health", server.port(tern::proxy::ListenerKind::kHealth)},
                       {"stats", server.port(tern::proxy::ListenerKind::kStats)},
                       {"workers", options.workers},
                       {"interception_mode", mode}});
  // The main thread watches the config file and the signals; the workers serve. It also gives
  // the heap back after a wave of connections closed: their frames and buffers went to glibc's
  // free lists (up to kHeapRetained an arena, and fragmented between what lives on), where a
  // malloc_trim returns them to the kernel. Only after a real drop: a trim walks every arena.
  // Idle connections that park give their buffers back too (http1_session.h): a wave of them is
  // trimmed the same way.
  int connections_peak = 0;
  uint64_t parked_at_trim = 0;
  while (!server.stopping()) {
    const int connections = server.active_connections();
    const uint64_t parked = tern::proxy::ParkedConnectionsTotal();
    connections_peak = std::max(connections_peak, connections);
    if ((connections_peak - connections >= kTrimAfterClosing && connections <= connections_peak / 2) ||
        parked - parked_at_trim >= kTrimAfterClosing) {
      malloc_trim(0);
      connections_peak = connections;
      parked_at_trim = parked;
    }
    timespec wait{0, 250 * 1000 * 1000};
    int sig = sigtimedwait(&stop, nullptr, &wait);
    if (sig == SIGTERM || sig == SIGINT) {
      // Drain: no new connections; open ones finish (or are cut when the drain time is up).
      log.Info("signal: draining", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"},
                                    {"drain_ms", drain.count()}, {"open_connections", server.active_connections()}});
      server.Drain();
      auto deadline = std::chrono::steady_clock::now() + drain;
      while (server.active_connections() > 0 && std::chrono::steady_clock::now() < deadline && !server.stopping()) {
        timespec tick{0, 20 * 1000 * 1000};
        if (sigtimedwait(&stop, nullptr, &tick) > 0) break;  // a second signal: stop at once
      }
      log.Info("stopping", {{"open_connections", server.active_connections()}});
      server.Stop();
      break;
    }
    if (!config_path.empty()) {
      tern::FileStamp now = tern::StampOf(config_path);
      if (!(now == stamp)) {
        stamp = now;
        load();
      }
    }
  }
  server.Wait();
  return 0;
}
