#include "core/tls/serving_cert.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "core/base/files.h"
#include "core/tls/x509.h"

namespace tern {
namespace {

class ServingCertTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tern-cert-XXXXXX";
    dir_ = mkdtemp(tmpl);
    ca_ = *CreateSelfSigned({.common_name = "test-ca", .is_ca = true});
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }
  void Write(const PemPair& pair) {
    ASSERT_TRUE(WriteFileAtomically(dir_ + "/tls.crt", pair.cert_pem).ok());
    ASSERT_TRUE(WriteFileAtomically(dir_ + "/tls.key", pair.key_pem).ok());
  }
  std::string dir_;
  PemPair ca_;
};

TEST_F(ServingCertTest, LoadsAndRefusesMismatchedKeyKeepingLastGood) {
  auto leaf = *IssueCertificate(ca_, {.common_name = "svc", .dns_names = {"svc.ns.svc"}});
  Write(leaf);
  ServingCert cert(dir_ + "/tls.crt", dir_ + "/tls.key");
  ASSERT_TRUE(cert.ReloadIfChanged().ok());
  EXPECT_TRUE(cert.loaded());
  auto other = *IssueCertificate(ca_, {.common_name = "other"});
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/tls.key", other.key_pem).ok());
  Status s = cert.ReloadIfChanged();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("does not match"), std::string::npos) << s.message();
  EXPECT_TRUE(cert.loaded());
  EXPECT_TRUE(cert.ReloadIfChanged().ok()) << "an unchanged bad file is not re-reported";
}

TEST_F(ServingCertTest, MissingFilesAreAnError) {
  ServingCert cert(dir_ + "/none.crt", dir_ + "/none.key");
  EXPECT_FALSE(cert.ReloadIfChanged().ok());
  EXPECT_FALSE(cert.loaded());
}

}  // namespace
}  // namespace tern
