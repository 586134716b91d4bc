#include "webhook/ternctl_ternd.h"

#include <httplib.h>

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "core/base/flags.h"

namespace tern::webhook {

namespace {

struct Target {
  std::string ternd, ca;
};

// GET `path` from ternd; the body, or an error message (with `ok` false).
std::string Fetch(const Target& t, const std::string& path, bool* ok) {
  *ok = false;
  size_t colon = t.ternd.rfind(':');
  if (colon == std::string::npos) return "--ternd: \"" + t.ternd + "\" is not HOST:PORT";
  httplib::SSLClient client(t.ternd.substr(0, colon), std::atoi(t.ternd.substr(colon + 1).c_str()));
  client.set_ca_cert_path(t.ca.c_str());
  client.enable_server_certificate_verification(true);
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(10, 0);
  auto res = client.Get(path.c_str());
  if (!res) return "ternd at " + t.ternd + ": " + httplib::to_string(res.error());
  if (res->status != 200) return "ternd answered " + std::to_string(res->status) + ": " + res->body;
  *ok = true;
  return res->body;
}

// Parses the shared flags; positional arguments go to `positional`.
bool ParseTarget(const char* command, int argc, char** argv, Target* t, std::vector<std::string>* positional, int* exit_code) {
  FlagSet flags(std::string("ternctl ") + command);
  flags.String("ternd", &t->ternd, "ternd's HTTPS address, HOST:PORT");
  flags.String("ca", &t->ca, "the CA ternd's certificate chains to (PEM)");
  std::vector<const char*> args = {command};
  for (int i = 0; i < argc; ++i) {
    if (argv[i][0] != '-' && (i == 0 || std::string(argv[i - 1]).find('=') != std::string::npos || argv[i - 1][0] != '-')) {
      positional->push_back(argv[i]);
    } else {
      args.push_back(argv[i]);
    }
  }
  bool help = false;
  Status s = flags.Parse(static_cast<int>(args.size()), args.data(), &help);
  if (!s.ok() || help || t->ternd.empty() || t->ca.empty()) {
    std::cerr << (s.ok() ? "" : "ternctl " + std::string(command) + ": " + s.message() + "\n") << flags.Usage();
    *exit_code = help ? 0 : 2;
    return false;
  }
  return true;
}

}  // namespace

int ProxyStatusCommand(int argc, char** argv) {
  Target t;
  std::vector<std::string> positional;
  int code = 0;
  if (!ParseTarget("proxy-status", argc, argv, &t, &positional, &code)) return code;
  bool ok = false;
  std::string body = Fetch(t, "/debug/proxies", &ok);
  if (!ok) {
    std::cerr << "ternctl proxy-status: " << body << "\n";
    return 1;
  }
  auto proxies = nlohmann::json::parse(body, nullptr, false);
  if (!proxies.is_array()) {
    std::cerr << "ternctl proxy-status: ternd's answer is not a list\n";
    return 1;
  }
  std::printf("%-40s %-10s %-8s %-8s %s\n", "NAME", "SENT", "ACKED", "STATE", "ERROR");
  for (const auto& p : proxies) {
    const std::string sent = p.value("version_sent", ""), acked = p.value("version_acked", ""), error = p.value("error", "");
    const char* state = !error.empty() ? "REFUSED" : sent == acked ? "SYNCED" : "STALE";
    std::printf("%-40s %-10s %-8s %-8s %s\n", (p.value("pod", "") + "." + p.value("namespace", "")).c_str(), sent.c_str(),
                acked.empty() ? "-" : acked.c_str(), state, error.c_str());
  }
  return 0;
}

int ProxyConfigCommand(int argc, char** argv) {
  Target t;
  std::vector<std::string> positional;
  int code = 0;
  if (!ParseTarget("proxy-config", argc, argv, &t, &positional, &code)) return code;
  if (positional.size() != 1 || positional[0].find('.') == std::string::npos) {
    std::cerr << "ternctl proxy-config: name the proxy as POD.NAMESPACE\n";
    return 2;
  }
  const std::string pod = positional[0].substr(0, positional[0].find('.'));
  const std::string ns = positional[0].substr(positional[0].find('.') + 1);
  bool ok = false;
  std::string body = Fetch(t, "/debug/proxy-config?namespace=" + ns + "&pod=" + pod, &ok);
  if (!ok) {
    std::cerr << "ternctl proxy-config: " << body << "\n";
    return 1;
  }
  std::cout << body;
  return 0;
}

}  // namespace tern::webhook
