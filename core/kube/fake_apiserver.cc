#include "core/kube/fake_apiserver.h"

#include <httplib.h>
#include <openssl/pem.h>

#include "core/base/base64.h"

namespace tern::kube {

namespace {

nlohmann::json StatusObject(int code, const std::string& reason, const std::string& message) {
  return {{"kind", "Status"}, {"apiVersion", "v1"}, {"metadata", nlohmann::json::object()}, {"status", "Failure"},
          {"message", message}, {"reason", reason}, {"code", code}};
}

}  // namespace

FakeApiServer::FakeApiServer(std::string token) : token_(std::move(token)) {
  ca_ = *CreateSelfSigned({.common_name = "fake kube CA", .is_ca = true});
  PemPair leaf = *IssueCertificate(ca_, {.common_name = "kube-apiserver", .dns_names = {"localhost"},
                                         .ip_addresses = {"127.0.0.1"}});
  BIO* b = BIO_new_mem_buf(leaf.cert_pem.data(), static_cast<int>(leaf.cert_pem.size()));
  X509* cert = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
  BIO_free(b);
  b = BIO_new_mem_buf(leaf.key_pem.data(), static_cast<int>(leaf.key_pem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr);
  BIO_free(b);
  server_ = std::make_unique<httplib::SSLServer>(cert, key);
  X509_free(cert);
  EVP_PKEY_free(key);
  server_->Get(".*", [this](const httplib::Request& req, httplib::Response& res) {
    std::chrono::milliseconds delay;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++requests_;
      delay = delay_;
    }
    std::this_thread::sleep_for(delay);
    if (req.get_header_value("Authorization") != "Bearer " + token_) {
      res.status = 401;
      res.set_content(StatusObject(401, "Unauthorized", "Unauthorized").dump(), "application/json");
      return;
    }
    std::lock_guard<std::mutex> lock(mu_);
    auto it = objects_.find(req.path);
    if (it == objects_.end()) {
      std::string name = req.path.substr(req.path.rfind('/') + 1);
      res.status = 404;
      res.set_content(StatusObject(404, "NotFound", "\"" + name + "\" not found").dump(), "application/json");
      return;
    }
    if (stall_ == std::chrono::milliseconds(0)) {
      res.set_content(it->second.dump(), "application/json");
      return;
    }
    auto body = std::make_shared<std::string>(it->second.dump());
    res.set_content_provider(body->size(), "application/json",
                             [this, body, stall = stall_](size_t offset, size_t, httplib::DataSink& sink) {
                               if (offset == 0) sink.write(body->data(), body->size() / 2);
                               auto end = std::chrono::steady_clock::now() + stall;
                               while (server_->is_running() && std::chrono::steady_clock::now() < end) {
                                 std::this_thread::sleep_for(std::chrono::milliseconds(10));
                               }
                               return false;  // the connection is closed, the answer short
                             });
  });
  port_ = server_->bind_to_any_port("127.0.0.1");
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  // httplib's stop() is a no-op until the listen loop runs; wait for it (bounded) so that a
  // server destroyed right away still stops.
  for (int i = 0; i < 400 && !server_->is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
}

FakeApiServer::~FakeApiServer() {
  server_->stop();
  thread_.join();
}

void FakeApiServer::Put(const std::string& path, nlohmann::json object) {
  std::lock_guard<std::mutex> lock(mu_);
  objects_[path] = std::move(object);
}

void FakeApiServer::set_delay(std::chrono::milliseconds delay) {
  std::lock_guard<std::mutex> lock(mu_);
  delay_ = delay;
}

void FakeApiServer::set_stall_mid_body(std::chrono::milliseconds stall) {
  std::lock_guard<std::mutex> lock(mu_);
  stall_ = stall;
}

std::string FakeApiServer::Kubeconfig(const std::string& token) const {
  return "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
         "clusters:\n- name: fake\n  cluster:\n    server: https://127.0.0.1:" + std::to_string(port_) + "\n"
         "    certificate-authority-data: " + Base64Encode(ca_.cert_pem) + "\n"
         "contexts:\n- name: test\n  context: {cluster: fake, user: test}\n"
         "users:\n- name: test\n  user: {token: " + (token.empty() ? token_ : token) + "}\n";
}

int FakeApiServer::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

}  // namespace tern::kube
