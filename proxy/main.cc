// tern-proxy: the sidecar, started exactly as the injector writes its container (flags, the
// environment of sidecar_env.h, the pod's mounted annotations and data volume). Starts on the
// empty snapshot (captured traffic passes through to its original destination), or on the
// snapshot it kept from its last run; loads --config when given and re-reads it when it changes
// (a refused snapshot keeps the last good one); serves the app's rewritten probes on
// --status-port; and serves until POST /quitquitquit or SIGTERM (which drains: no new
// connections, open ones get the drain duration to finish). `tern-proxy wait` waits for
// readiness (wait_command.h).
#include <algorithm>
#include <atomic>
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
#include "core/base/flags.h"
#include "core/log/logger.h"
#include "proxy/config_store.h"
#include "proxy/http1_session.h"
#include "proxy/pod_settings.h"
#include "proxy/discovery_client.h"
#include "proxy/server.h"
#include "proxy/sidecar_env.h"
#include "proxy/status_agent.h"
#include "proxy/wait_command.h"

namespace {

// Where the container's well-known paths are: "/" in a pod. TERN_FILES_ROOT moves them all
// (tests, and sidecars run outside a container) without changing the command line.
std::string FilesRoot() {
  const char* root = std::getenv("TERN_FILES_ROOT");
  std::string r = root ? root : "";
  while (!r.empty() && r.back() == '/') r.pop_back();
  return r;
}

// --domain: "<namespace>.svc.<cluster domain>", as the injector writes it.
bool SplitDomain(const std::string& domain, std::string* ns, std::string* cluster_domain) {
  size_t svc = domain.find(".svc.");
  if (svc == std::string::npos || svc == 0 || svc + 5 >= domain.size()) return false;
  *ns = domain.substr(0, svc);
  *cluster_domain = domain.substr(svc + 5);
  return ns->find('.') == std::string::npos;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string_view(argv[1]) == "wait") return tern::proxy::RunWaitCommand(argc - 1, argv + 1);
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
  const std::string root = FilesRoot();
  std::string config_path, level = "info", domain;
  std::string pod_annotations = root + "/etc/istio/pod/annotations", data_dir = root + "/var/lib/istio/data";
  const char* mode_env = std::getenv("ISTIO_META_INTERCEPTION_MODE");
  std::string mode = mode_env ? mode_env : "REDIRECT";
  long concurrency = options.workers, header_timeout_ms = options.header_timeout.count(), status_port = 0;
  long outbound = options.outbound_port, inbound = options.inbound_port, admin = options.admin_port,
       health = options.health_port, stats = options.stats_port;
  tern::FlagSet flags("tern-proxy");
  flags.String("config", &config_path, "config snapshot file (YAML or JSON), re-read when it changes");
  flags.String("domain", &domain, "the pod's DNS domain, <namespace>.svc.<cluster domain>: short hosts resolve under it");
  flags.Int("concurrency", &concurrency, 1, 256, "worker threads (2)");
  flags.Custom("interception-mode", [&](std::string_view v) -> std::string {
    if (v != "REDIRECT" && v != "TPROXY") return "\"" + std::string(v) + "\" is not REDIRECT or TPROXY";
    mode = v;
    return "";
  }, "REDIRECT or TPROXY (env ISTIO_META_INTERCEPTION_MODE; REDIRECT)");
  flags.String("log-level", &level, "debug|info|warn|error (info)");
  flags.String("pod-annotations", &pod_annotations,
               "the pod's annotations as the downward API mounts them (/etc/istio/pod/annotations)");
  flags.String("data-dir", &data_dir, "where the last accepted snapshot is kept across restarts (/var/lib/istio/data)");
  flags.Int("header-timeout-ms", &header_timeout_ms, 1, 3600000, "an HTTP/1.1 request's header must arrive within it (15000)");
  flags.Int("status-port", &status_port, 0, 65535,
            "the app-probe agent and readiness (Istio's 15020); 0: none (0)");
  flags.Int("outbound-port", &outbound, 0, 65535, "captured outbound (15001; 0 picks a free port)");
  flags.Int("inbound-port", &inbound, 0, 65535, "captured inbound (15006)");
  flags.Int("admin-port", &admin, 0, 65535, "admin on 127.0.0.1 (15000)");
  flags.Int("health-port", &health, 0, 65535, "/healthz/ready (15021)");
  flags.Int("stats-port", &stats, 0, 65535, "/stats/prometheus (15090)");
  bool help = false;
  if (tern::Status s = flags.Parse(argc, argv, &help); !s.ok()) {
    std::cerr << "tern-proxy: " << s.message() << "\n" << flags.Usage() << "  tern-proxy wait --help: the readiness wait\n";
    return 2;
  }
  if (help) {
    std::cout << flags.Usage() << "  tern-proxy wait --help: the readiness wait\n";
    return 0;
  }
  const bool concurrency_flag = flags.Given("concurrency"), level_flag = flags.Given("log-level");
  options.workers = static_cast<int>(concurrency);
  options.header_timeout = std::chrono::milliseconds(header_timeout_ms);
  options.outbound_port = static_cast<uint16_t>(outbound);
  options.inbound_port = static_cast<uint16_t>(inbound);
  options.admin_port = static_cast<uint16_t>(admin);
  options.health_port = static_cast<uint16_t>(health);
  options.stats_port = static_cast<uint16_t>(stats);
  tern::LogLevel log_level;
  if (!tern::ParseLogLevel(level, &log_level)) {
    std::cerr << "tern-proxy: --log-level: \"" << level << "\" is not one of debug, info, warn, error\n";
    return 2;
  }
  std::string domain_namespace, cluster_domain = "cluster.local";
  if (!domain.empty() && !SplitDomain(domain, &domain_namespace, &cluster_domain)) {
    std::cerr << "tern-proxy: --domain: \"" << domain << "\" is not <namespace>.svc.<cluster domain>\n";
    return 2;
  }
  options.tproxy = mode == "TPROXY";
  tern::Logger log(2, log_level);
  // Istio's terminationDrainDuration default: how long open connections get to finish on SIGTERM.
  std::chrono::milliseconds drain{5000};

  // What the injector put in the environment: who this proxy is, the app's probes, the pod's
  // ProxyConfig. A value that does not parse is reported; the proxy still starts.
  std::vector<std::string> env_problems;
  const tern::proxy::SidecarEnvironment sidecar = tern::proxy::ReadSidecarEnvironment(tern::proxy::ProcessEnvironment(), &env_problems);
  for (const auto& p : env_problems) log.Warn("environment value ignored", {{"problem", p}});
  if (!domain_namespace.empty() && !sidecar.pod_namespace.empty() && domain_namespace != sidecar.pod_namespace) {
    log.Warn("--domain names another namespace than POD_NAMESPACE", {{"domain", domain}, {"namespace", sidecar.pod_namespace}});
  }

  // The pod's tuning: its ProxyConfig (PROXY_CONFIG), then its annotations file (which also has
  // tern.dev/* keys); flags given win over both. A bad value is reported and ignored.
  std::map<std::string, std::string> tuning;
  if (!sidecar.proxy_config.empty()) tuning["proxy.istio.io/config"] = sidecar.proxy_config.dump();
  if (auto text = tern::ReadFile(pod_annotations); text.ok()) {
    std::vector<std::string> problems;
    for (auto& [k, v] : tern::proxy::ParseDownwardApiFile(*text, &problems)) tuning[k] = v;
    for (const auto& p : problems) log.Warn("pod annotation ignored", {{"file", pod_annotations}, {"problem", p}});
  }
  {
    tern::proxy::PodSettings pod = tern::proxy::SettingsFromAnnotations(tuning);
    for (const auto& p : pod.problems) log.Warn("pod setting ignored", {{"problem", p}});
    if (pod.concurrency && !concurrency_flag) options.workers = *pod.concurrency;
    if (pod.log_level && !level_flag) log.set_level(*pod.log_level);
    if (pod.drain) drain = *pod.drain;
    options.inbound_rate_limit = pod.rate_limit;
  }

  tern::proxy::ConfigStore store(cluster_domain);
  tern::FileStamp stamp;
  // Every snapshot accepted from ternd is kept in the pod's data volume, so a proxy restarted
  // while the control plane is unreachable routes by its last good config (and is ready) at
  // once. (A proxy run from --config has its file.)
  const std::string kept_snapshot = data_dir + "/tern-snapshot.json";
  std::atomic<bool> keep_warned{false};
  auto keep = [&] {
    if (tern::Status kept = tern::WriteFileAtomically(kept_snapshot, store.DocumentText(), 0600); !kept.ok() && !keep_warned.exchange(true)) {
      log.Warn("cannot keep the snapshot across restarts", {{"error", kept.message()}});
    }
  };
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
  } else if (auto kept = tern::ReadFile(kept_snapshot); kept.ok()) {
    tern::Status s = store.Load(*kept);
    malloc_trim(0);
    if (s.ok()) log.Info("kept snapshot loaded", {{"file", kept_snapshot}, {"version", store.Current()->snapshot().version}});
    else log.Warn("kept snapshot refused", {{"file", kept_snapshot}, {"error", s.message()}});
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
  // The config stream from ternd (unless a file is given): each snapshot applied as it comes and
  // kept; the last good one stays while ternd is unreachable.
  std::unique_ptr<tern::proxy::DiscoveryClient> discovery;
  if (config_path.empty() && !sidecar.discovery_address.empty()) {
    if (sidecar.pod_name.empty() || sidecar.pod_namespace.empty()) {
      log.Error("TERN_DISCOVERY_ADDRESS is set but POD_NAME or POD_NAMESPACE is not: no config stream", nlohmann::json::object());
    } else {
      discovery = std::make_unique<tern::proxy::DiscoveryClient>(
          tern::proxy::DiscoveryClientOptions{
              .address = sidecar.discovery_address,
              .ca_file = root + "/var/run/secrets/istio/root-cert.pem",
              .pod = sidecar.pod_name,
              .namespace_ = sidecar.pod_namespace,
              .token_file = root + "/var/run/secrets/tokens/istio-token",
              .apply =
                  [&](const std::string& text, std::string* version) {
                    tern::Status s = store.Load(text);
                    malloc_trim(0);
                    if (s.ok()) {
                      *version = store.Current()->snapshot().version;
                      log.Info("config accepted", {{"source", sidecar.discovery_address}, {"version", *version}});
                      keep();
                    }
                    return s;
                  }},
          log);
      discovery->Start();
    }
  }
  // The kubelet's rewritten probes land on the status port (app-probe agent).
  std::unique_ptr<tern::proxy::StatusAgent> status_agent;
  if (status_port != 0) {
    boost::asio::ip::address app = sidecar.instance_ip.value_or(boost::asio::ip::make_address("127.0.0.1"));
    status_agent = std::make_unique<tern::proxy::StatusAgent>(
        tern::proxy::StatusAgentOptions{.port = static_cast<uint16_t>(status_port), .probers = sidecar.probers, .app = app,
                                        .ready = [&server] { return server.ready(); }},
        log);
    if (tern::Status s = status_agent->Start(); !s.ok()) {
      std::cerr << "tern-proxy: " << s.message() << "\n";
      server.Stop();
      server.Wait();
      return 1;
    }
  }
  log.Info("serving", {{"outbound", server.port(tern::proxy::ListenerKind::kOutbound)},
                       {"inbound", server.port(tern::proxy::ListenerKind::kInbound)},
                       {"admin", server.port(tern::proxy::ListenerKind::kAdmin)},
                       {"health", server.port(tern::proxy::ListenerKind::kHealth)},
                       {"stats", server.port(tern::proxy::ListenerKind::kStats)},
                       {"status", status_agent ? status_agent->port() : 0},
                       {"app_probes", sidecar.probers.size()},
                       {"workers", options.workers},
                       {"interception_mode", mode},
                       {"pod", sidecar.pod_name},
                       {"namespace", sidecar.pod_namespace},
                       {"service_account", sidecar.service_account},
                       {"instance_ip", sidecar.instance_ip ? sidecar.instance_ip->to_string() : ""},
                       {"cluster_domain", cluster_domain},
                       {"discovery_address", sidecar.discovery_address},
                       {"ca_address", sidecar.ca_address},
                       {"trust_domain", sidecar.trust_domain}});
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
  if (discovery) discovery->Stop();
  if (status_agent) status_agent->Stop();
  return 0;
}
