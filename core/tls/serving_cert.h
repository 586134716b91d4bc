// A TLS server certificate read from files (a mounted Secret) and reloaded when they change,
// so a rotated certificate is served without a restart. Handshakes pick the current pair up
// through an SSL_CTX certificate callback; a pair that fails to load or whose key does not match
// the certificate is refused, and the last good one keeps being served.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <mutex>
#include <string>

#include "core/base/files.h"
#include "core/base/status.h"

namespace tern {

class ServingCert {
 public:
  ServingCert(std::string cert_path, std::string key_path);
  ~ServingCert();
  ServingCert(const ServingCert&) = delete;
  ServingCert& operator=(const ServingCert&) = delete;

  // Loads the files if they changed since the last successful or failed attempt. Returns OK when
  // nothing changed or the new pair loaded; otherwise the error (and the old pair stays).
  Status ReloadIfChanged();
  bool loaded() const;

  // Makes `ctx` serve the current pair (TLS 1.2 minimum). `this` must outlive `ctx`.
  void Install(SSL_CTX* ctx);

 private:
  struct Pair;
  static int CertCallback(SSL* ssl, void* arg);
  std::shared_ptr<const Pair> Current() const;

  std::string cert_path_, key_path_;
  mutable std::mutex mu_;
  std::shared_ptr<const Pair> current_;
  FileStamp cert_stamp_, key_stamp_;
  bool attempted_ = false;
};

}  // namespace tern
