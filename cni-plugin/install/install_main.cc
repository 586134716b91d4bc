// tern-cni-install: the node DaemonSet's entrypoint (see installer.h). Runs until SIGTERM,
// re-checking the node every --poll-interval-ms, then undoes the installation; --once installs
// and exits, --uninstall undoes and exits, --check exits 0 only when the node is installed.
#include <signal.h>

#include <cstdlib>
#include <ctime>
#include <iostream>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "cni-plugin/install/installer.h"
#include "core/log/logger.h"
#include "core/net/ip_range.h"

namespace {

constexpr const char* kUsage = R"(usage: tern-cni-install [flags]
  --plugin-source PATH     tern-cni binary to install (/opt/tern/bin/tern-cni)
  --bin-dir DIR            node CNI bin dir, as mounted (/host/opt/cni/bin)
  --conf-dir DIR           node CNI conf dir, as mounted (/host/etc/cni/net.d)
  --host-conf-dir DIR      the conf dir as the node sees it (/etc/cni/net.d)
  --kubeconfig-name NAME   tern-cni's kubeconfig, written into the conf dir (tern-cni.kubeconfig)
  --secrets-dir DIR        service-account token and CA (/var/run/secrets/kubernetes.io/serviceaccount)
  --exclude-namespaces L   namespaces tern-cni never captures (kube-system,tern-system)
  --api-timeout-ms N       tern-cni's deadline for reading a pod (5000)
  --poll-interval-ms N     how often the installation is re-checked (5000)
  --log-level LEVEL        debug|info|warn|error (info)
  --once | --uninstall | --check
)";

struct Flags {
  tern::cni::InstallOptions options;
  long poll_ms = 5000;
  std::string mode = "run";
  tern::LogLevel level = tern::LogLevel::kInfo;
};

bool ParseNumber(const std::string& text, long lo, long hi, long* out) {
  char* end = nullptr;
  long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || v < lo || v > hi) return false;
  *out = v;
  return true;
}

// --name value or --name=value; an error names the flag.
bool ParseFlags(int argc, char** argv, Flags* f, std::string* error) {
  auto& o = f->options;
  std::map<std::string, std::string*> paths = {
      {"--plugin-source", &o.plugin_source}, {"--bin-dir", &o.bin_dir},
      {"--conf-dir", &o.conf_dir},           {"--host-conf-dir", &o.host_conf_dir},
      {"--kubeconfig-name", &o.kubeconfig_name}, {"--secrets-dir", &o.secrets_dir}};
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i], value;
    if (arg == "--once" || arg == "--uninstall" || arg == "--check") {
      f->mode = arg.substr(2);
      continue;
    }
    if (arg == "-h" || arg == "--help") {
      f->mode = "help";
      continue;
    }
    size_t eq = arg.find('=');
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      *error = arg + ": needs a value";
      return false;
    }
    long n = 0;
    if (auto it = paths.find(arg); it != paths.end()) {
      if (value.empty()) {
        *error = arg + ": must not be empty";
        return false;
      }
      *it->second = value;
    } else if (arg == "--exclude-namespaces") {
      o.exclude_namespaces = tern::SplitList(value);
    } else if (arg == "--api-timeout-ms") {
      if (!ParseNumber(value, 1, 60000, &n)) {
        *error = arg + ": \"" + value + "\" is not a number from 1 to 60000";
        return false;
      }
      o.api_timeout_ms = static_cast<int>(n);
    } else if (arg == "--poll-interval-ms") {
      if (!ParseNumber(value, 10, 3600000, &n)) {
        *error = arg + ": \"" + value + "\" is not a number from 10 to 3600000";
        return false;
      }
      f->poll_ms = n;
    } else if (arg == "--log-level") {
      if (!tern::ParseLogLevel(value, &f->level)) {
        *error = arg + ": \"" + value + "\" is not one of debug, info, warn, error";
        return false;
      }
    } else {
      *error = arg + ": unknown flag";
      return false;
    }
  }
  return true;
}

tern::Result<tern::kube::ClusterConfig> Cluster(const Flags& f) {
  return tern::kube::InClusterConfig(
      [](const std::string& name) -> std::optional<std::string> {
        const char* v = std::getenv(name.c_str());
        return v ? std::optional<std::string>(v) : std::nullopt;
      },
      f.options.secrets_dir);
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  std::string error;
  if (!ParseFlags(argc, argv, &flags, &error)) {
    std::cerr << "tern-cni-install: " << error << "\n" << kUsage;
    return 2;
  }
  if (flags.mode == "help") {
    std::cout << kUsage;
    return 0;
  }
  tern::Logger log(2, flags.level);
  // Signals are taken synchronously (sigtimedwait) between passes, never mid-write.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  sigprocmask(SIG_BLOCK, &stop, nullptr);

  if (flags.mode == "uninstall") {
    tern::cni::Installer installer(flags.options, {});
    tern::Status s = installer.Uninstall();
    if (!s.ok()) log.Error("uninstall failed", {{"error", s.message()}});
    else log.Info("tern-cni uninstalled", {{"conf_dir", flags.options.conf_dir}});
    return s.ok() ? 0 : 1;
  }
  for (;;) {
    // The service-account token rotates: read it again on every pass.
    auto cluster = Cluster(flags);
    tern::Status status = cluster.status();
    if (cluster.ok()) {
      tern::cni::Installer installer(flags.options, *cluster);
      if (flags.mode == "check") {
        status = installer.Check();
        if (!status.ok()) std::cerr << "tern-cni-install: not installed: " << status.message() << "\n";
        return status.ok() ? 0 : 1;
      }
      auto report = installer.Install();
      status = report.status();
      if (report.ok() && report->changed()) {
        log.Info("tern-cni installed", {{"config", report->config_file},
                                        {"binary_written", report->binary_written},
                                        {"kubeconfig_written", report->kubeconfig_written},
                                        {"config_written", report->config_written}});
      }
    }
    if (!status.ok()) log.Warn("tern-cni not installed yet", {{"error", status.message()}});
    if (flags.mode == "once") return status.ok() ? 0 : 1;

    timespec wait{flags.poll_ms / 1000, (flags.poll_ms % 1000) * 1000000};
    int sig = sigtimedwait(&stop, nullptr, &wait);
    if (sig == SIGTERM || sig == SIGINT) {
      tern::cni::Installer installer(flags.options, {});
      tern::Status s = installer.Uninstall();
      if (!s.ok()) {
        log.Error("uninstall failed", {{"error", s.message()}});
        return 1;
      }
      log.Info("tern-cni uninstalled", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
      return 0;
    }
  }
}
