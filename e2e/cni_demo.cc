// The demo's capture step: a pod ternd injected in CNI mode is wired by containerd's go-cni
// library (bridge + host-local + tern-cni) on a local "node", with a fake API server serving
// the pod, and its traffic is shown going where the mesh wants it. Root only; everything stays
// inside namespaces the demo makes.
//   cni_demo BUILD_DIR SOURCE_DIR INJECTED_YAML
#include <unistd.h>

#include <cstdio>
#include <string>

#include "core/base/files.h"
#include "core/yaml/yaml_json.h"
#include "e2e/cni/local_node.h"

namespace {

using nlohmann::json;
using tern::nettest::Connect;
using tern::nettest::Endpoint;
using tern::nettest::Listener;
using tern::nettest::ToString;

int failures = 0;

void Check(bool ok, const std::string& what) {
  std::printf("  %s %s\n", ok ? "ok  " : "FAIL", what.c_str());
  if (!ok) ++failures;
}

// The pod a Deployment's ReplicaSet would create from the injected template.
json PodFrom(const json& deployment) {
  json pod = {{"apiVersion", "v1"}, {"kind", "Pod"}, {"metadata", deployment["spec"]["template"]["metadata"]},
              {"spec", deployment["spec"]["template"]["spec"]}};
  pod["metadata"]["name"] = deployment["metadata"]["name"].get<std::string>() + "-5d8f7c9b4-x2k7q";
  pod["metadata"]["namespace"] = "my-app";
  return pod;
}

}  // namespace

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);  // interleave in order with the plugins' stderr
  if (argc != 4) {
    std::fprintf(stderr, "usage: cni_demo BUILD_DIR SOURCE_DIR INJECTED_YAML\n");
    return 2;
  }
  if (geteuid() != 0) {
    std::printf("capture step skipped: it makes network namespaces, which needs root\n");
    return 0;
  }
  auto text = tern::ReadFile(argv[3]);
  auto docs = text.ok() ? tern::ParseYamlDocuments(*text) : tern::Result<std::vector<json>>(text.status());
  if (!docs.ok() || docs->empty() || (*docs)[0]["kind"] != "Deployment") {
    std::fprintf(stderr, "cni_demo: %s: expected the injected Deployment\n", argv[3]);
    return 1;
  }
  json pod = PodFrom((*docs)[0]);
  const std::string ns = pod["metadata"]["namespace"], name = pod["metadata"]["name"];
  std::printf("\n== Capture: pod %s/%s, injected by ternd in CNI mode\n", ns.c_str(), name.c_str());
  json validation;
  for (const auto& c : pod["spec"]["initContainers"]) {
    if (c["name"] == "istio-validation") validation = c;
  }
  Check(validation.is_object() && validation["securityContext"]["capabilities"]["drop"] == json({"ALL"}),
        "init step istio-validation runs unprivileged (uid 1338, all capabilities dropped): no NET_ADMIN in the pod");
  std::printf("  capture settings the injector wrote for tern-cni:\n");
  for (const auto& [k, v] : pod["metadata"]["annotations"].items()) {
    if (k.starts_with("traffic.sidecar.istio.io/") || k == "sidecar.istio.io/interceptionMode") {
      std::printf("    %s: \"%s\"\n", k.c_str(), v.get<std::string>().c_str());
    }
  }

  auto node = tern::e2e::LocalNode::Create({.build_dir = argv[1], .source_dir = argv[2]});
  if (!node.ok()) {
    std::fprintf(stderr, "cni_demo: %s\n", node.status().message().c_str());
    return 1;
  }
  auto& n = **node;
  n.PutPod(pod);
  std::printf("\n  the node: bridge %s (%s, %s), kube-apiserver stand-in serving the pod over HTTPS\n",
              n.options().bridge.c_str(), n.options().subnet4.c_str(), n.options().subnet6.c_str());
  std::string before = n.pod().Exec("nft list ruleset");
  auto add = n.GoCni("add", ns, name);
  Check(add.exit_code == 0, "containerd's go-cni ran bridge, host-local, tern-cni (ADD)");
  if (add.exit_code != 0) {
    std::printf("%s%s", add.out.c_str(), add.err.c_str());
    return 1;
  }
  std::printf("    %s", add.err.c_str());  // tern-cni's own log line
  json ips = json::parse(add.out, nullptr, false)["ips"];
  std::string pod4, pod6;
  for (const auto& ip : ips) (ip.get<std::string>().find(':') == std::string::npos ? pod4 : pod6) = ip;
  std::printf("    pod addresses: %s, %s\n\n", pod4.c_str(), pod6.c_str());

  const std::string gw4 = n.options().gateway4, gw6 = n.options().gateway6;
  Endpoint local, original;
  {
    Listener out4(n.pod(), {"0.0.0.0", 15001}), out6(n.pod(), {"::", 15001}), in4(n.pod(), {"0.0.0.0", 15006});
    Listener health(n.pod(), {"0.0.0.0", 15021});
    Listener order4(n.node(), {"0.0.0.0", 8080}), order6(n.node(), {"::", 8080});
    bool up = Connect(n.pod(), {gw4, 8080}, 1000) && out4.Accept(&local, &original);
    Check(up && original == Endpoint{gw4, 8080},
          "app (uid 1000) -> " + ToString({gw4, 8080}) + ": arrived at the sidecar's :15001, original destination " +
              ToString(original));
    up = Connect(n.pod(), {gw6, 8080}, 1000) && out6.Accept(&local, &original);
    Check(up && original == Endpoint{gw6, 8080},
          "app (uid 1000) -> " + ToString({gw6, 8080}) + ": arrived at the sidecar's :15001, original destination " +
              ToString(original));
    up = Connect(n.pod(), {gw4, 8080}, 1337) && order4.Accept(&local, &original);
    Check(up && local == Endpoint{gw4, 8080}, "sidecar (uid 1337) -> " + ToString({gw4, 8080}) +
                                                  ": went straight out to the service (no loop)");
    up = Connect(n.node(), {pod4, 8080}, 0) && in4.Accept(&local, &original);
    Check(up && original == Endpoint{pod4, 8080}, "inbound -> " + ToString({pod4, 8080}) +
                                                      ": arrived at the sidecar's :15006, original destination " +
                                                      ToString(original));
    up = Connect(n.node(), {pod4, 15021}, 0) && health.Accept(&local, &original);
    Check(up && local == Endpoint{pod4, 15021},
          "kubelet probe -> " + ToString({pod4, 15021}) + ": reached the sidecar's health port, not captured");
  }

  // The injected init step, run as the pod would run it: its own args, uid 1338.
  std::string cmd = "ip netns exec " + n.pod().name() + " setpriv --reuid 1338 --regid 1338 --clear-groups " +
                    std::string(argv[1]) + "/init/tern-init";
  for (const auto& a : validation["args"]) cmd += " '" + a.get<std::string>() + "'";
  int rc = -1;
  std::string out = tern::nettest::RunShell(cmd + " --validation-timeout 3000", &rc);
  Check(rc == 0, "istio-validation with the injected args: " + out.substr(0, out.find('\n')));

  auto check = n.GoCni("check", ns, name);
  Check(check.exit_code == 0, "go-cni CHECK: bridge, host-local and tern-cni all find the pod as they left it");
  auto del = n.GoCni("del", ns, name);
  Check(del.exit_code == 0 && n.pod().Exec("nft list ruleset") == before,
        "go-cni DEL: the pod's ruleset is back to what it was before ADD");
  std::printf("\n%s\n", failures == 0 ? "capture: all checks passed" : "capture: some checks FAILED");
  return failures == 0 ? 0 : 1;
}
