// X.509 helpers on OpenSSL 3: make a CA and issue leaf certificates (ECDSA P-256, SHA-256).
// Used by `ternctl webhook-cert`, by the tests, and later by ternd's workload CA.
#pragma once

#include <string>
#include <vector>

#include "core/base/status.h"

namespace tern {

struct PemPair {
  std::string cert_pem;
  std::string key_pem;
};

struct CertRequest {
  std::string common_name;
  std::vector<std::string> dns_names;
  std::vector<std::string> ip_addresses;
  std::vector<std::string> uris;  // e.g. spiffe://cluster.local/ns/x/sa/y
  int valid_days = 365;
  bool is_ca = false;
};

// A self-signed certificate (a CA when request.is_ca).
Result<PemPair> CreateSelfSigned(const CertRequest& request);

// A certificate signed by `issuer` (its cert and key in PEM).
Result<PemPair> IssueCertificate(const PemPair& issuer, const CertRequest& request);

}  // namespace tern
