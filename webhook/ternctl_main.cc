// ternctl: `kube-inject` injects manifests like `istioctl kube-inject`; `webhook-cert` makes
// the webhook's serving certificate and CA; `proxy-status` and `proxy-config` ask a running
// ternd (see README).
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>
#include <sys/stat.h>

#include "core/base/files.h"
#include "core/meshconfig/mesh_config.h"
#include "core/tls/x509.h"
#include "core/yaml/yaml_json.h"
#include "webhook/kube_inject.h"
#include "webhook/ternctl_ternd.h"

namespace {

constexpr const char* kUsage = R"(usage:
  ternctl kube-inject -f FILE [--mesh-config FILE] [-o FILE]
      Injects the Pods and pod templates (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job,
      CronJob) of a multi-document YAML file ("-" reads stdin) and prints the result as YAML.
  ternctl webhook-cert --service NAME --namespace NS --out DIR [--days N] [--ip ADDR ...]
      Writes DIR/ca.crt, DIR/tls.crt and DIR/tls.key: a CA and a serving certificate for
      NAME.NS.svc (and each --ip), for the webhook Secret and the MutatingWebhookConfiguration's
      caBundle, or for ternd reached by address on a local node.
  ternctl proxy-status --ternd HOST:PORT --ca FILE
      Every proxy connected to ternd: the snapshot version it was sent and the one it
      acknowledged (SYNCED, STALE, or REFUSED with the proxy's reason).
  ternctl proxy-config POD.NAMESPACE --ternd HOST:PORT --ca FILE
      The snapshot that proxy was last sent, as `tern-proxy --config` reads it.
)";

int Fail(const std::string& message) {
  std::cerr << "ternctl: " << message << "\n";
  return 1;
}

int KubeInjectCommand(int argc, char** argv) {
  std::string input, mesh_file, output;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "-f" || a == "--filename") input = next();
    else if (a == "--mesh-config") mesh_file = next();
    else if (a == "-o" || a == "--output") output = next();
    else return Fail("kube-inject: unknown argument " + a + "\n" + kUsage);
  }
  if (input.empty()) return Fail("kube-inject: -f FILE is required");
  std::string text;
  if (input == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else {
    auto r = tern::ReadFile(input);
    if (!r.ok()) return Fail(r.status().message());
    text = *r;
  }
  tern::MeshConfig mesh;
  if (!mesh_file.empty()) {
    auto m = tern::LoadMeshConfig(mesh_file);
    if (!m.ok()) return Fail(m.status().message());
    mesh = *m;
  }
  auto docs = tern::ParseYamlDocuments(text);
  if (!docs.ok()) return Fail(input + ": " + docs.status().message());
  std::vector<tern::webhook::KubeInjectReport> report;
  auto out = tern::webhook::KubeInject(*docs, mesh, &report);
  if (!out.ok()) return Fail(input + ": " + out.status().message());
  std::string yaml;
  for (const auto& d : *out) yaml += tern::ToYaml(d) + "---\n";
  for (const auto& r : report) {
    std::cerr << r.object << ": " << tern::webhook::OutcomeName(r.outcome) << " (" << r.reason << ")\n";
  }
  if (output.empty()) {
    std::cout << yaml;
    return 0;
  }
  tern::Status s = tern::WriteFileAtomically(output, yaml);
  return s.ok() ? 0 : Fail(s.message());
}

int WebhookCertCommand(int argc, char** argv) {
  std::string service, ns, dir;
  std::vector<std::string> ips;
  int days = 365;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--service") service = next();
    else if (a == "--namespace") ns = next();
    else if (a == "--out") dir = next();
    else if (a == "--days") days = std::atoi(next().c_str());
    else if (a == "--ip") ips.push_back(next());
    else return Fail("webhook-cert: unknown argument " + a + "\n" + kUsage);
  }
  if (service.empty() || ns.empty() || dir.empty() || days <= 0) {
    return Fail("webhook-cert: --service, --namespace, --out and a positive --days are required");
  }
  ::mkdir(dir.c_str(), 0700);
  auto ca = tern::CreateSelfSigned({.common_name = "tern webhook CA", .valid_days = days * 2, .is_ca = true});
  if (!ca.ok()) return Fail(ca.status().message());
  std::string host = service + "." + ns + ".svc";
  std::vector<std::string> addresses = {"127.0.0.1", "::1"};
  addresses.insert(addresses.end(), ips.begin(), ips.end());
  auto leaf = tern::IssueCertificate(
      *ca, {.common_name = host,
            .dns_names = {service, service + "." + ns, host, host + ".cluster.local", "localhost"},
            .ip_addresses = addresses,
            .valid_days = days});
  if (!leaf.ok()) return Fail(leaf.status().message());
  for (const auto& [name, content, mode] :
       {std::tuple{"ca.crt", ca->cert_pem, 0644}, std::tuple{"tls.crt", leaf->cert_pem, 0644},
        std::tuple{"tls.key", leaf->key_pem, 0600}}) {
    tern::Status s = tern::WriteFileAtomically(dir + "/" + name, content, mode);
    if (!s.ok()) return Fail(s.message());
  }
  std::cerr << "wrote " << dir << "/ca.crt, tls.crt, tls.key for " << host << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << kUsage;
    return 2;
  }
  std::string cmd = argv[1];
  if (cmd == "kube-inject") return KubeInjectCommand(argc - 2, argv + 2);
  if (cmd == "webhook-cert") return WebhookCertCommand(argc - 2, argv + 2);
  if (cmd == "proxy-status") return tern::webhook::ProxyStatusCommand(argc - 2, argv + 2);
  if (cmd == "proxy-config") return tern::webhook::ProxyConfigCommand(argc - 2, argv + 2);
  if (cmd == "help" || cmd == "--help" || cmd == "-h") {
    std::cout << kUsage;
    return 0;
  }
  std::cerr << "ternctl: unknown command " << cmd << "\n" << kUsage;
  return 2;
}
