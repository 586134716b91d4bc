#include "core/tls/serving_cert.h"

#include <openssl/err.h>
#include <openssl/pem.h>

namespace tern {

struct ServingCert::Pair {
  X509* leaf = nullptr;
  STACK_OF(X509)* chain = nullptr;
  EVP_PKEY* key = nullptr;
  ~Pair() {
    X509_free(leaf);
    sk_X509_pop_free(chain, X509_free);
    EVP_PKEY_free(key);
  }
};

ServingCert::ServingCert(std::string cert_path, std::string key_path)
    : cert_path_(std::move(cert_path)), key_path_(std::move(key_path)) {}
ServingCert::~ServingCert() = default;

bool ServingCert::loaded() const { return Current() != nullptr; }

std::shared_ptr<const ServingCert::Pair> ServingCert::Current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return current_;
}

Status ServingCert::ReloadIfChanged() {
  FileStamp cert_stamp = StampOf(cert_path_), key_stamp = StampOf(key_path_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (attempted_ && cert_stamp == cert_stamp_ && key_stamp == key_stamp_) return Status::Ok();
    attempted_ = true;
    cert_stamp_ = cert_stamp;
    key_stamp_ = key_stamp;
  }
  auto cert_pem = ReadFile(cert_path_);
  if (!cert_pem.ok()) return cert_pem.status();
  auto key_pem = ReadFile(key_path_);
  if (!key_pem.ok()) return key_pem.status();

  auto pair = std::make_shared<Pair>();
  BIO* bio = BIO_new_mem_buf(cert_pem->data(), static_cast<int>(cert_pem->size()));
  pair->leaf = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  pair->chain = sk_X509_new_null();
  while (X509* extra = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) sk_X509_push(pair->chain, extra);
  BIO_free(bio);
  ERR_clear_error();  // reading past the last certificate leaves a benign "no start line" error
  if (!pair->leaf) return Status::Error(cert_path_ + ": no PEM certificate");
  bio = BIO_new_mem_buf(key_pem->data(), static_cast<int>(key_pem->size()));
  pair->key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (!pair->key) return Status::Error(key_path_ + ": no PEM private key");
  if (X509_check_private_key(pair->leaf, pair->key) != 1) {
    ERR_clear_error();
    return Status::Error(key_path_ + ": private key does not match the certificate in " + cert_path_);
  }
  std::lock_guard<std::mutex> lock(mu_);
  current_ = std::move(pair);
  return Status::Ok();
}

int ServingCert::CertCallback(SSL* ssl, void* arg) {
  auto pair = static_cast<ServingCert*>(arg)->Current();
  if (!pair) return 0;  // fails the handshake: nothing to serve yet
  if (SSL_use_cert_and_key(ssl, pair->leaf, pair->key, pair->chain, 1) != 1) return 0;
  return 1;
}

void ServingCert::Install(SSL_CTX* ctx) {
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_cert_cb(ctx, &ServingCert::CertCallback, this);
}

}  // namespace tern
