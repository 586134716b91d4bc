// A small Kubernetes REST client: enough for the mesh's binaries to read the objects they need
// (tern-cni reads the pod it is wiring; ternd will read namespaces). HTTPS only, server
// certificate verified against the cluster CA, bearer token or client certificate, and a
// deadline on every call so an API server that is down or slow costs a bounded wait.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/base/status.h"
#include "core/kube/https_get.h"

namespace tern::kube {

struct ClusterConfig {
  std::string host;  // no scheme
  int port = 443;
  std::string ca_pem;
  std::string token;                  // bearer token, or
  std::string client_cert_pem, client_key_pem;  // a client certificate
};

// The pod's own credentials: KUBERNETES_SERVICE_HOST/PORT and the mounted service-account token
// and CA under `secrets_dir` (default /var/run/secrets/kubernetes.io/serviceaccount).
Result<ClusterConfig> InClusterConfig(
    const std::function<std::optional<std::string>(const std::string&)>& env,
    const std::string& secrets_dir = "/var/run/secrets/kubernetes.io/serviceaccount");

// A kubeconfig file's current context (certificate-authority(-data), token(-file),
// client-certificate(-data)/client-key(-data)); errors name the field.
Result<ClusterConfig> LoadKubeconfig(const std::string& path);

struct Response {
  int status = 0;       // HTTP status
  nlohmann::json body;  // the object, or the API's Status object on errors
  // For errors: the Status message when the API sent one, else a description.
  std::string message() const;
};

class Client {
 public:
  // Fails when the configuration cannot be turned into TLS settings (bad PEM).
  static Result<std::unique_ptr<Client>> Create(const ClusterConfig& config, std::chrono::milliseconds timeout);
  ~Client();

  // GET path ("/api/v1/namespaces/x/pods/y"). Transport failures (refused, timed out, TLS) are
  // errors; HTTP errors come back as a Response with their status.
  Result<Response> Get(const std::string& path);
  // POST path with a JSON body (a TokenReview); answers as Get.
  Result<Response> Post(const std::string& path, const nlohmann::json& body);
  // A streamed GET (a watch): each line of a 200 answer to `on_line` as it arrives, as
  // HttpsGetLines says; a refusal comes back with its status and Status body.
  Result<StreamedAnswer> GetLines(const std::string& path, const LineStreamLimits& limits, int stop_fd, const OnLine& on_line);

 private:
  struct Impl;
  explicit Client(std::unique_ptr<Impl> impl);
  Result<Response> Call(const std::string& method, const std::string& path, const std::string& body);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tern::kube
