#include "core/tls/x509.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>

namespace tern {
namespace {

template <class T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using PKey = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using Cert = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using Bio = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;

Status OpenSslError(const char* what) { return Status::Error(std::string("OpenSSL: ") + what + " failed"); }

std::string ToPem(X509* cert) {
  Bio bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

std::string ToPem(EVP_PKEY* key) {
  Bio bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

bool AddExt(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (!ext) return false;
  bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

Result<Cert> Build(const CertRequest& req, EVP_PKEY* subject_key, X509* issuer_cert, EVP_PKEY* issuer_key) {
  Cert cert(X509_new());
  if (!cert) return OpenSslError("X509_new");
  X509_set_version(cert.get(), 2);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7f;  // positive
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -300);  // tolerate clock skew
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(req.valid_days) * 86400);
  X509_set_pubkey(cert.get(), subject_key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("tern"), -1, -1, 0);
  if (!req.common_name.empty()) {
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(req.common_name.c_str()), -1, -1, 0);
  }
  X509* issuer = issuer_cert ? issuer_cert : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer));

  bool ok = true;
  if (req.is_ca) {
    ok &= AddExt(cert.get(), issuer, NID_basic_constraints, "critical,CA:TRUE");
    ok &= AddExt(cert.get(), issuer, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature");
  } else {
    ok &= AddExt(cert.get(), issuer, NID_basic_constraints, "critical,CA:FALSE");
    ok &= AddExt(cert.get(), issuer, NID_key_usage, "critical,digitalSignature,keyEncipherment");
    ok &= AddExt(cert.get(), issuer, NID_ext_key_usage, "serverAuth,clientAuth");
  }
  ok &= AddExt(cert.get(), issuer, NID_subject_key_identifier, "hash");
  if (issuer_cert) ok &= AddExt(cert.get(), issuer, NID_authority_key_identifier, "keyid:always");
  std::string san;
  for (const auto& d : req.dns_names) san += (san.empty() ? "" : ",") + std::string("DNS:") + d;
  for (const auto& ip : req.ip_addresses) san += (san.empty() ? "" : ",") + std::string("IP:") + ip;
  for (const auto& u : req.uris) san += (san.empty() ? "" : ",") + std::string("URI:") + u;
  if (!san.empty()) ok &= AddExt(cert.get(), issuer, NID_subject_alt_name, san);
  if (!ok) return Status::Error("OpenSSL: cannot add certificate extensions (check names: " + san + ")");
  if (X509_sign(cert.get(), issuer_key, EVP_sha256()) <= 0) return OpenSslError("X509_sign");
  return cert;
}

}  // namespace

Result<PemPair> CreateSelfSigned(const CertRequest& request) {
  PKey key(EVP_EC_gen("P-256"));
  if (!key) return OpenSslError("EVP_EC_gen");
  auto cert = Build(request, key.get(), nullptr, key.get());
  if (!cert.ok()) return cert.status();
  return PemPair{ToPem(cert->get()), ToPem(key.get())};
}

Result<PemPair> IssueCertificate(const PemPair& issuer, const CertRequest& request) {
  Bio cert_bio(BIO_new_mem_buf(issuer.cert_pem.data(), static_cast<int>(issuer.cert_pem.size())));
  Cert issuer_cert(PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr));
  Bio key_bio(BIO_new_mem_buf(issuer.key_pem.data(), static_cast<int>(issuer.key_pem.size())));
  PKey issuer_key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (!issuer_cert || !issuer_key) return Status::Error("issuer certificate or key is not valid PEM");
  PKey key(EVP_EC_gen("P-256"));
  if (!key) return OpenSslError("EVP_EC_gen");
  auto cert = Build(request, key.get(), issuer_cert.get(), issuer_key.get());
  if (!cert.ok()) return cert.status();
  return PemPair{ToPem(cert->get()), ToPem(key.get())};
}

}  // namespace tern
