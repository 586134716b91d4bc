#include "core/kube/client.h"

#include <httplib.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "core/base/base64.h"
#include "core/base/files.h"
#include "core/base/json_fields.h"
#include "core/yaml/yaml_json.h"

namespace tern::kube {

using nlohmann::json;

std::string Response::message() const {
  std::string m = StringField(body, "message");
  return m.empty() ? "HTTP " + std::to_string(status) : m;
}

Result<ClusterConfig> InClusterConfig(const std::function<std::optional<std::string>(const std::string&)>& env,
                                      const std::string& secrets_dir) {
  auto host = env("KUBERNETES_SERVICE_HOST");
  auto port = env("KUBERNETES_SERVICE_PORT");
  if (!host || host->empty()) return Status::Error("not in a cluster: KUBERNETES_SERVICE_HOST is not set");
  ClusterConfig c;
  c.host = *host;
  try {
    c.port = port ? std::stoi(*port) : 443;
  } catch (const std::exception&) {
    return Status::Error("KUBERNETES_SERVICE_PORT: \"" + *port + "\" is not a port");
  }
  auto token = ReadFile(secrets_dir + "/token");
  if (!token.ok()) return token.status();
  auto ca = ReadFile(secrets_dir + "/ca.crt");
  if (!ca.ok()) return ca.status();
  c.token = *token;
  while (!c.token.empty() && (c.token.back() == '\n' || c.token.back() == ' ')) c.token.pop_back();
  c.ca_pem = *ca;
  return c;
}

namespace {

// The entry named `name` in a kubeconfig list (clusters, users, contexts).
const json* Named(const json& list, const std::string& name) {
  if (!list.is_array()) return nullptr;
  for (const auto& e : list) {
    if (StringField(e, "name") == name) return &e;
  }
  return nullptr;
}

// A field given inline as base64 (`<field>-data`) or as a file path (`<field>`); relative paths
// are relative to the kubeconfig's folder, as kubectl resolves them.
Result<std::string> DataOrFile(const json& obj, const std::string& field, const std::string& dir,
                               const std::string& where) {
  std::string data = StringField(obj, (field + "-data").c_str());
  if (!data.empty()) {
    auto decoded = Base64Decode(data);
    if (!decoded) return Status::Error(where + "." + field + "-data: not base64");
    return *decoded;
  }
  std::string path = StringField(obj, field.c_str());
  if (path.empty()) return std::string();
  if (path[0] != '/') path = dir + "/" + path;
  return ReadFile(path);
}

}  // namespace

Result<ClusterConfig> LoadKubeconfig(const std::string& path) {
  auto text = ReadFile(path);
  if (!text.ok()) return text.status();
  auto doc = ParseYaml(*text);
  if (!doc.ok()) return doc.status().Context(path);
  std::string dir = path.substr(0, path.rfind('/') == std::string::npos ? 0 : path.rfind('/'));
  if (dir.empty()) dir = ".";
  std::string context_name = StringField(*doc, "current-context");
  if (context_name.empty()) return Status::Error(path + ": current-context is not set");
  const json* context = Named((*doc)["contexts"], context_name);
  if (!context || !(*context)["context"].is_object()) {
    return Status::Error(path + ": contexts: no context named \"" + context_name + "\"");
  }
  std::string cluster_name = StringField((*context)["context"], "cluster");
  std::string user_name = StringField((*context)["context"], "user");
  const json* cluster = Named((*doc)["clusters"], cluster_name);
  if (!cluster || !(*cluster)["cluster"].is_object()) {
    return Status::Error(path + ": clusters: no cluster named \"" + cluster_name + "\"");
  }
  const json& cl = (*cluster)["cluster"];
  std::string server = StringField(cl, "server");
  if (server.rfind("https://", 0) != 0) {
    return Status::Error(path + ": clusters[" + cluster_name + "].server: \"" + server + "\" is not an https:// URL");
  }
  ClusterConfig c;
  std::string hostport = server.substr(8);
  hostport = hostport.substr(0, hostport.find('/'));
  size_t colon = hostport.rfind(':');
  bool bracketed_v6 = !hostport.empty() && hostport[0] == '[';
  if (colon != std::string::npos && (!bracketed_v6 || colon > hostport.find(']'))) {
    c.host = hostport.substr(0, colon);
    try {
      c.port = std::stoi(hostport.substr(colon + 1));
    } catch (const std::exception&) {
      return Status::Error(path + ": clusters[" + cluster_name + "].server: bad port in \"" + server + "\"");
    }
  } else {
    c.host = hostport;
  }
  if (bracketed_v6) c.host = c.host.substr(1, c.host.size() - 2);
  auto ca = DataOrFile(cl, "certificate-authority", dir, "clusters[" + cluster_name + "]");
  if (!ca.ok()) return ca.status();
  c.ca_pem = *ca;
  if (const json* user = Named((*doc)["users"], user_name); user && (*user)["user"].is_object()) {
    const json& u = (*user)["user"];
    c.token = StringField(u, "token");
    if (c.token.empty() && !StringField(u, "tokenFile").empty()) {
      auto t = ReadFile(StringField(u, "tokenFile"));
      if (!t.ok()) return t.status();
      c.token = *t;
      while (!c.token.empty() && (c.token.back() == '\n' || c.token.back() == ' ')) c.token.pop_back();
    }
    auto cert = DataOrFile(u, "client-certificate", dir, "users[" + user_name + "]");
    if (!cert.ok()) return cert.status();
    auto key = DataOrFile(u, "client-key", dir, "users[" + user_name + "]");
    if (!key.ok()) return key.status();
    c.client_cert_pem = *cert;
    c.client_key_pem = *key;
  }
  return c;
}

struct Client::Impl {
  std::unique_ptr<httplib::SSLClient> http;
};

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

Result<std::unique_ptr<Client>> Client::Create(const ClusterConfig& config, std::chrono::milliseconds timeout) {
  auto impl = std::make_unique<Impl>();
  X509* client_cert = nullptr;
  EVP_PKEY* client_key = nullptr;
  if (!config.client_cert_pem.empty()) {
    BIO* b = BIO_new_mem_buf(config.client_cert_pem.data(), static_cast<int>(config.client_cert_pem.size()));
    client_cert = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    b = BIO_new_mem_buf(config.client_key_pem.data(), static_cast<int>(config.client_key_pem.size()));
    client_key = PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    if (!client_cert || !client_key) {
      X509_free(client_cert);
      EVP_PKEY_free(client_key);
      return Status::Error("client certificate or key is not valid PEM");
    }
    impl->http = std::make_unique<httplib::SSLClient>(config.host, config.port, client_cert, client_key);
    X509_free(client_cert);
    EVP_PKEY_free(client_key);
  } else {
    impl->http = std::make_unique<httplib::SSLClient>(config.host, config.port);
  }
  // The cluster CA, and nothing else, vouches for the API server.
  X509_STORE* store = X509_STORE_new();
  BIO* b = BIO_new_mem_buf(config.ca_pem.data(), static_cast<int>(config.ca_pem.size()));
  int added = 0;
  while (X509* ca = PEM_read_bio_X509(b, nullptr, nullptr, nullptr)) {
    added += X509_STORE_add_cert(store, ca);
    X509_free(ca);
  }
  BIO_free(b);
  if (added == 0) {
    X509_STORE_free(store);
    return Status::Error("the cluster CA is not valid PEM");
  }
  impl->http->set_ca_cert_store(store);  // owned by the client from here
  impl->http->enable_server_certificate_verification(true);
  if (!config.token.empty()) impl->http->set_bearer_token_auth(config.token);
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(timeout);
  auto usecs = std::chrono::duration_cast<std::chrono::microseconds>(timeout - secs);
  impl->http->set_connection_timeout(secs.count(), usecs.count());
  impl->http->set_read_timeout(secs.count(), usecs.count());
  impl->http->set_write_timeout(secs.count(), usecs.count());
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

Result<Response> Client::Get(const std::string& path) {
  auto res = impl_->http->Get(path, {{"Accept", "application/json"}});
  if (!res) {
    std::string why = httplib::to_string(res.error());
    long verify = impl_->http->get_openssl_verify_result();
    if (verify != X509_V_OK) why += " (" + std::string(X509_verify_cert_error_string(verify)) + ")";
    return Status::Error("GET " + path + ": " + why);
  }
  Response r;
  r.status = res->status;
  r.body = json::parse(res->body, nullptr, false);
  if (r.body.is_discarded()) {
    if (r.status == 200) return Status::Error("GET " + path + ": the API server's answer is not JSON");
    r.body = json{{"message", res->body.substr(0, 200)}};
  }
  return r;
}

}  // namespace tern::kube
