// ternd: Tern's central daemon. Today it serves the sidecar injection webhook on its one HTTPS
// listener (server/); discovery, the config stream and the CA join it in later issues.
#include <signal.h>

#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "control-plane/server/ternd_server.h"
#include "core/base/flags.h"
#include "core/log/logger.h"

int main(int argc, char** argv) {
  tern::control_plane::TerndOptions options;
  options.https.port = 15017;
  std::string listen = "0.0.0.0:15017", level = "info", port_file;
  long threads = 2, max_connections = static_cast<long>(options.https.max_connections);
  tern::FlagSet flags("ternd");
  flags.String("listen", &listen, "HTTPS address HOST:PORT (0.0.0.0:15017; port 0 picks one)");
  flags.String("tls-cert", &options.cert_file, "serving certificate chain (PEM), reloaded when it changes");
  flags.String("tls-key", &options.key_file, "serving private key (PEM), reloaded when it changes");
  flags.String("mesh-config", &options.mesh_config_file, "mesh.yaml (built-in defaults), reloaded when it changes");
  flags.String("config-folder", &options.config_folder,
               "discovery from a folder of Kubernetes manifests, watched (none)");
  flags.String("kubeconfig", &options.kubeconfig,
               "discovery from the Kubernetes API: in-cluster, or a kubeconfig file (none)");
  flags.String("port-file", &port_file, "write the bound port here once listening (for scripts)");
  flags.String("log-level", &level, "debug|info|warn|error (info)");
  flags.Int("threads", &threads, 1, 64, "HTTPS worker threads (2)");
  flags.Int("max-connections", &max_connections, 1, 1000000,
            "open HTTPS connections; past it the longest idle is closed (10000)");
  bool help = false;
  if (tern::Status s = flags.Parse(argc, argv, &help); !s.ok()) {
    std::cerr << "ternd: " << s.message() << "\n" << flags.Usage();
    return 2;
  }
  if (help) {
    std::cout << flags.Usage();
    return 0;
  }
  tern::LogLevel log_level;
  if (!tern::ParseLogLevel(level, &log_level)) {
    std::cerr << "ternd: --log-level: \"" << level << "\" is not debug, info, warn or error\n";
    return 2;
  }
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos) {
    std::cerr << "ternd: --listen: \"" << listen << "\" is not HOST:PORT\n";
    return 2;
  }
  options.https.host = listen.substr(0, colon);
  if (options.https.host.size() > 2 && options.https.host.front() == '[') {
    options.https.host = options.https.host.substr(1, options.https.host.size() - 2);  // [::]:15017
  }
  try {
    options.https.port = std::stoi(listen.substr(colon + 1));
  } catch (const std::exception&) {
    options.https.port = -1;
  }
  if (options.https.port < 0 || options.https.port > 65535) {
    std::cerr << "ternd: --listen: bad port in \"" << listen << "\"\n";
    return 2;
  }
  if (options.cert_file.empty() || options.key_file.empty()) {
    std::cerr << "ternd: --tls-cert and --tls-key are required\n" << flags.Usage();
    return 2;
  }
  options.https.threads = static_cast<int>(threads);
  options.https.max_connections = static_cast<size_t>(max_connections);

  // Block the stop signals in every thread; one thread waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  tern::Logger log(2, log_level);
  auto server = tern::control_plane::TerndServer::Create(options, log);
  if (!server.ok()) {
    log.Error("ternd cannot start", {{"error", server.status().message()}});
    return 1;
  }
  auto& srv = **server;
  if (!port_file.empty()) {
    FILE* f = std::fopen(port_file.c_str(), "w");
    if (f) {
      std::fprintf(f, "%d\n", srv.port());
      std::fclose(f);
    }
  }
  std::thread signal_waiter([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    log.Info("stopping", {{"signal", strsignal(sig)}});
    srv.Stop();
  });
  log.Info("listening", {{"address", options.https.host + ":" + std::to_string(srv.port())},
                         {"meshConfig", options.mesh_config_file}});
  srv.Run();
  // Run() returns once stopped; make sure the signal thread can finish.
  pthread_kill(signal_waiter.native_handle(), SIGTERM);
  signal_waiter.join();
  return 0;
}
