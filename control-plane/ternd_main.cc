// ternd: Tern's central daemon. Today it serves the sidecar injection webhook; the CA and the
// config stream join it in later issues.
#include <signal.h>

#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "core/log/logger.h"
#include "webhook/server.h"

namespace {

constexpr const char* kUsage = R"(usage: ternd [flags]
  --listen=HOST:PORT       webhook HTTPS address (default 0.0.0.0:15017; port 0 picks one)
  --tls-cert=FILE          serving certificate chain (PEM), reloaded when it changes
  --tls-key=FILE           serving private key (PEM), reloaded when it changes
  --mesh-config=FILE       mesh.yaml (default: built-in defaults), reloaded when it changes
  --port-file=FILE         write the bound port here once listening (for scripts)
  --log-level=LEVEL        debug|info|warn|error (default info)
)";

bool Flag(const std::string& arg, const char* name, std::string* value) {
  std::string prefix = std::string("--") + name + "=";
  if (arg.rfind(prefix, 0) != 0) return false;
  *value = arg.substr(prefix.size());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  tern::webhook::ServerOptions options;
  std::string listen = "0.0.0.0:15017", level = "info", port_file;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      return 0;
    }
    if (!(Flag(arg, "listen", &listen) || Flag(arg, "tls-cert", &options.cert_file) ||
          Flag(arg, "tls-key", &options.key_file) || Flag(arg, "mesh-config", &options.mesh_config_file) ||
          Flag(arg, "port-file", &port_file) || Flag(arg, "log-level", &level))) {
      std::cerr << "ternd: unknown flag " << arg << "\n" << kUsage;
      return 2;
    }
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
  options.host = listen.substr(0, colon);
  try {
    options.port = std::stoi(listen.substr(colon + 1));
  } catch (const std::exception&) {
    options.port = -1;
  }
  if (options.port < 0 || options.port > 65535) {
    std::cerr << "ternd: --listen: bad port in \"" << listen << "\"\n";
    return 2;
  }
  if (options.cert_file.empty() || options.key_file.empty()) {
    std::cerr << "ternd: --tls-cert and --tls-key are required\n" << kUsage;
    return 2;
  }

  // Block the stop signals in every thread; one thread waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  tern::Logger log(2, log_level);
  auto server = tern::webhook::WebhookServer::Create(options, log);
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
  log.Info("webhook listening", {{"address", options.host + ":" + std::to_string(srv.port())},
                                 {"meshConfig", options.mesh_config_file}});
  srv.Run();
  // Run() also returns if the listener fails; make sure the signal thread can finish.
  pthread_kill(signal_waiter.native_handle(), SIGTERM);
  signal_waiter.join();
  return 0;
}
