#include "core/kube/client.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "core/base/base64.h"
#include "core/base/files.h"
#include "core/base/json_fields.h"
#include "core/base/json_limits.h"
#include "core/kube/https_get.h"
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

// One TLS context per client: the cluster CA as the only trust anchor, peer verification on,
// TLS 1.2 or later, and the client certificate when the kubeconfig has one.
struct Client::Impl {
  std::unique_ptr<SSL_CTX, void (*)(SSL_CTX*)> ctx{nullptr, SSL_CTX_free};
  HttpsTarget target;
  std::vector<std::string> headers;
  std::chrono::milliseconds timeout{0};
};

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

namespace {

X509* ReadCert(const std::string& pem) {
  BIO* b = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* cert = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
  BIO_free(b);
  return cert;
}

}  // namespace

Result<std::unique_ptr<Client>> Client::Create(const ClusterConfig& config, std::chrono::milliseconds timeout) {
  auto impl = std::make_unique<Impl>();
  impl->ctx.reset(SSL_CTX_new(TLS_client_method()));
  if (!impl->ctx) return Status::Error("cannot create a TLS context");
  SSL_CTX* ctx = impl->ctx.get();
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);

  // The cluster CA, and nothing else, vouches for the API server: no system CA is loaded.
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  BIO* b = BIO_new_mem_buf(config.ca_pem.data(), static_cast<int>(config.ca_pem.size()));
  int added = 0;
  while (X509* ca = PEM_read_bio_X509(b, nullptr, nullptr, nullptr)) {
    added += X509_STORE_add_cert(store, ca);
    X509_free(ca);
  }
  BIO_free(b);
  ERR_clear_error();  // the loop ends on a "no start line" error
  if (added == 0) return Status::Error("the cluster CA is not valid PEM");

  if (!config.client_cert_pem.empty() || !config.client_key_pem.empty()) {
    X509* cert = ReadCert(config.client_cert_pem);
    BIO* kb = BIO_new_mem_buf(config.client_key_pem.data(), static_cast<int>(config.client_key_pem.size()));
    EVP_PKEY* key = PEM_read_bio_PrivateKey(kb, nullptr, nullptr, nullptr);
    BIO_free(kb);
    bool ok = cert && key && SSL_CTX_use_certificate(ctx, cert) == 1 && SSL_CTX_use_PrivateKey(ctx, key) == 1 &&
              SSL_CTX_check_private_key(ctx) == 1;
    X509_free(cert);
    EVP_PKEY_free(key);
    ERR_clear_error();
    if (!ok) return Status::Error("client certificate or key is not valid PEM, or they do not match");
  }
  impl->target = {config.host, config.port};
  impl->headers = {"Accept: application/json"};
  if (!config.token.empty()) impl->headers.push_back("Authorization: Bearer " + config.token);
  impl->timeout = timeout;
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

Result<StreamedAnswer> Client::GetLines(const std::string& path, const LineStreamLimits& limits, int stop_fd,
                                        const OnLine& on_line) {
  return HttpsGetLines(impl_->ctx.get(), impl_->target, path, impl_->headers, limits, stop_fd, on_line);
}

Result<Response> Client::Get(const std::string& path) { return Call("GET", path, ""); }

Result<Response> Client::Post(const std::string& path, const json& body) { return Call("POST", path, body.dump()); }

Result<Response> Client::Call(const std::string& method, const std::string& path, const std::string& body) {
  auto res = HttpsRequest(impl_->ctx.get(), impl_->target, method, path, impl_->headers, body, impl_->timeout);
  if (!res.ok()) return res.status();
  Response r;
  r.status = res->status;
  r.body = JsonNestingDepth(res->body) > kMaxJsonNestingDepth ? json(nullptr)
                                                              : json::parse(res->body, nullptr, false);
  if (r.body.is_discarded() || r.body.is_null()) {
    if (r.status / 100 == 2) return Status::Error(method + " " + path + ": the API server's answer is not JSON");
    r.body = json{{"message", res->body.substr(0, 200)}};
  }
  return r;
}

}  // namespace tern::kube
