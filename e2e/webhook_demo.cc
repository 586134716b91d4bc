// The local stand-in for kube-apiserver's admission step. It reads the shipped
// MutatingWebhookConfiguration, then for every workload in the given manifests creates the pod
// its controller would create, evaluates each webhook's namespaceSelector and objectSelector
// exactly as kube-apiserver does, and for a match POSTs the AdmissionReview to ternd over HTTPS
// (verifying ternd's certificate against the CA, as the caBundle does). It applies the returned
// JSONPatch and prints what each pod becomes.
#include <httplib.h>

#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "core/base/base64.h"
#include "core/base/files.h"
#include "core/kube/label_selector.h"
#include "core/yaml/yaml_json.h"
#include "webhook/admission_review_builder.h"

namespace {

using nlohmann::json;
using tern::Labels;

struct Webhook {
  std::string name;
  tern::LabelSelector namespace_selector, object_selector;
};

std::vector<Webhook> LoadWebhooks(const std::string& path) {
  auto docs = tern::ParseYamlDocuments(*tern::ReadFile(path));
  std::vector<Webhook> out;
  for (const auto& doc : *docs) {
    if (doc.value("kind", "") != "MutatingWebhookConfiguration") continue;
    for (const auto& w : doc["webhooks"]) {
      tern::FieldErrors errors;
      Webhook hook{w["name"], tern::ParseLabelSelector(w.value("namespaceSelector", json()), "namespaceSelector", errors),
                   tern::ParseLabelSelector(w.value("objectSelector", json()), "objectSelector", errors)};
      if (!errors.empty()) throw std::runtime_error(path + ": " + errors.ToString());
      out.push_back(std::move(hook));
    }
  }
  return out;
}

std::string Summarize(const json& pod) {
  std::string s;
  auto names = [](const json& list) {
    std::string out;
    for (const auto& c : list) {
      out += (out.empty() ? "" : ", ") + c["name"].get<std::string>();
      if (c.value("restartPolicy", "") == "Always") out += " (native sidecar)";
    }
    return out;
  };
  const json& spec = pod["spec"];
  if (spec.contains("initContainers")) s += "      initContainers: " + names(spec["initContainers"]) + "\n";
  s += "      containers:     " + names(spec["containers"]) + "\n";
  for (const auto& list : {spec.value("initContainers", json::array()), spec["containers"]}) {
    for (const auto& c : list) {
      if (c["name"] == "istio-init" || c["name"] == "istio-validation") {
        std::string args;
        for (const auto& a : c["args"]) args += " " + (a.get<std::string>().empty() ? "''" : a.get<std::string>());
        s += "      capture:        tern-init" + args + "\n";
      }
      if (c["name"] == "istio-proxy") {
        s += "      sidecar:        " + c["image"].get<std::string>() + " uid " +
             std::to_string(c["securityContext"]["runAsUser"].get<int>()) + ", ports";
        for (const auto& p : c["ports"]) s += " " + std::to_string(p["containerPort"].get<int>());
        s += "\n";
      }
    }
  }
  const json& labels = pod["metadata"]["labels"];
  s += "      labels:         security.istio.io/tlsMode=" + labels.value("security.istio.io/tlsMode", "") +
       " service.istio.io/canonical-name=" + labels.value("service.istio.io/canonical-name", "") +
       " canonical-revision=" + labels.value("service.istio.io/canonical-revision", "") + "\n";
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::cerr << "usage: webhook_demo HOST:PORT CA_FILE WEBHOOK_CONFIG [--namespace=NS] MANIFEST... [--yaml]\n"
                 "  --namespace=NS applies to the manifests after it that name no namespace (kustomize's namespace:)\n";
    return 2;
  }
  std::string target = argv[1], ca_file = argv[2], webhook_config = argv[3];
  bool print_yaml = false;
  std::string default_namespace = "default";
  std::vector<json> objects;
  for (int i = 4; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--yaml") {
      print_yaml = true;
      continue;
    }
    if (arg.rfind("--namespace=", 0) == 0) {
      default_namespace = arg.substr(12);
      continue;
    }
    auto text = tern::ReadFile(argv[i]);
    if (!text.ok()) return std::cerr << text.status().message() << "\n", 1;
    auto docs = tern::ParseYamlDocuments(*text);
    if (!docs.ok()) return std::cerr << argv[i] << ": " << docs.status().message() << "\n", 1;
    for (auto& d : *docs) {
      if (d.value("kind", "") != "Namespace" && d.contains("metadata") && !d["metadata"].contains("namespace")) {
        d["metadata"]["namespace"] = default_namespace;
      }
      objects.push_back(std::move(d));
    }
  }
  std::vector<Webhook> webhooks = LoadWebhooks(webhook_config);

  // kube-apiserver labels every namespace with its own name.
  std::map<std::string, Labels> namespaces = {{"default", {}}, {"kube-system", {}}};
  for (const auto& o : objects) {
    if (o.value("kind", "") != "Namespace") continue;
    tern::FieldErrors ignored;
    namespaces[o["metadata"]["name"]] = tern::ParseStringMap(o["metadata"].value("labels", json()), "", ignored);
  }
  for (auto& [name, labels] : namespaces) labels["kubernetes.io/metadata.name"] = name;

  size_t colon = target.rfind(':');
  httplib::SSLClient client(target.substr(0, colon), std::stoi(target.substr(colon + 1)));
  client.set_ca_cert_path(ca_file.c_str());
  client.enable_server_certificate_verification(true);
  client.set_keep_alive(true);

  int uid = 0, failures = 0;
  for (const auto& o : objects) {
    std::string kind = o.value("kind", "");
    if (kind != "Pod" && kind != "Deployment" && kind != "StatefulSet" && kind != "DaemonSet" && kind != "Job" &&
        kind != "CronJob" && kind != "ReplicaSet") {
      continue;
    }
    std::string ns = o["metadata"].value("namespace", "default");
    json pod = tern::webhook::PodFromWorkload(o, ns);
    tern::FieldErrors ignored;
    Labels pod_labels = tern::ParseStringMap(pod["metadata"].value("labels", json()), "", ignored);
    std::cout << "\n" << kind << " " << ns << "/" << o["metadata"]["name"].get<std::string>() << "\n";
    const Webhook* matched = nullptr;
    for (const auto& w : webhooks) {
      if (w.namespace_selector.Matches(namespaces[ns]) && w.object_selector.Matches(pod_labels)) {
        matched = &w;
        break;
      }
    }
    if (!matched) {
      std::cout << "  no webhook's namespaceSelector and objectSelector both match (namespace labels "
                << json(namespaces[ns]).dump() << "): kube-apiserver creates it unchanged\n";
      continue;
    }
    json review = tern::webhook::PodCreateReview(pod, ns, "demo-" + std::to_string(++uid));
    auto res = client.Post("/inject", review.dump(), "application/json");
    if (!res) {
      std::cout << "  webhook " << matched->name << " unreachable: " << httplib::to_string(res.error()) << "\n";
      ++failures;
      continue;
    }
    json answer = json::parse(res->body, nullptr, false);
    if (res->status != 200 || answer.is_discarded()) {
      std::cout << "  webhook answered HTTP " << res->status << ": " << res->body << "\n";
      ++failures;
      continue;
    }
    const json& r = answer["response"];
    std::cout << "  webhook " << matched->name << " -> ";
    if (!r.value("allowed", false)) {
      std::cout << "REFUSED: " << r["status"]["message"].get<std::string>() << "\n";
      continue;
    }
    if (!r.contains("patch")) {
      std::cout << "allowed unchanged\n";
      continue;
    }
    auto patch = tern::Base64Decode(r["patch"].get<std::string>());
    json ops = json::parse(*patch);
    json injected = pod.patch(ops);
    std::cout << "injected (" << ops.size() << " JSONPatch operations)\n" << Summarize(injected);
    if (print_yaml) std::cout << tern::ToYaml(injected);
  }
  return failures == 0 ? 0 : 1;
}
