// The proxy's config-stream client against a real HTTPS server speaking ternd's stream: every
// snapshot of a long stream applied in order on one connection (however much the stream
// carries in all), each acknowledged with its version or its refusal, an oversized snapshot
// ending the stream (and a reconnect starting over), and no connection to a server its mesh
// root does not vouch for.
#include "proxy/discovery_client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "control-plane/server/https_server.h"
#include "core/base/files.h"
#include "core/tls/serving_cert.h"
#include "core/tls/x509.h"

namespace tern::proxy {
namespace {

using namespace std::chrono_literals;
using control_plane::HttpRequest;
using control_plane::HttpResponse;
using control_plane::ResponseStream;
using nlohmann::json;

std::string Snapshot(int version, size_t padding) {
  return json({{"version", std::to_string(version)}, {"padding", std::string(padding, 'p')}}).dump() + "\n";
}

template <class F>
bool WaitUntil(F done) {
  for (int i = 0; i < 400; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(25ms);
  }
  return false;
}

class DiscoveryClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tern-dc-XXXXXX";
    dir_ = mkdtemp(tmpl);
    PemPair ca = *CreateSelfSigned({.common_name = "mesh root", .is_ca = true});
    PemPair leaf = *IssueCertificate(ca, {.common_name = "ternd", .ip_addresses = {"127.0.0.1"}});
    ASSERT_TRUE(WriteFileAtomically(dir_ + "/root-cert.pem", ca.cert_pem).ok());
    ASSERT_TRUE(WriteFileAtomically(dir_ + "/tls.crt", leaf.cert_pem).ok());
    ASSERT_TRUE(WriteFileAtomically(dir_ + "/tls.key", leaf.key_pem).ok());
    PemPair other = *CreateSelfSigned({.common_name = "another root", .is_ca = true});
    ASSERT_TRUE(WriteFileAtomically(dir_ + "/other-root.pem", other.cert_pem).ok());
    cert_ = std::make_unique<ServingCert>(dir_ + "/tls.crt", dir_ + "/tls.key");
    ASSERT_TRUE(cert_->ReloadIfChanged().ok());
    auto server = control_plane::HttpsServer::Create({.host = "127.0.0.1"}, [this](SSL_CTX* c) { cert_->Install(c); },
                                                     nullptr, log_);
    ASSERT_TRUE(server.ok()) << server.status().message();
    server_ = std::move(server).value();
    server_->RouteStream("GET", "/v1/snapshots", [this](const HttpRequest& r, const std::shared_ptr<ResponseStream>& s) {
      ++streams_;
      EXPECT_NE(r.target.find("namespace=my-app&pod=app-1"), std::string::npos) << r.target;
      std::lock_guard<std::mutex> lock(mu_);
      stream_ = s;
      return HttpResponse{200, "application/x-ndjson", Snapshot(1, 100)};
    });
    server_->Route("POST", "/v1/ack", [this](const HttpRequest& r) {
      std::lock_guard<std::mutex> lock(mu_);
      acks_.push_back(json::parse(r.body));
      return HttpResponse{200, "application/json", "{}"};
    });
    thread_ = std::thread([this] { server_->Run(); });
  }
  void TearDown() override {
    client_.reset();
    server_->Stop();
    thread_.join();
    std::system(("rm -rf " + dir_).c_str());
  }
  void StartClient(const std::string& ca_file, size_t max_snapshot_bytes) {
    client_ = std::make_unique<DiscoveryClient>(
        DiscoveryClientOptions{.address = "127.0.0.1:" + std::to_string(server_->port()),
                               .ca_file = ca_file,
                               .pod = "app-1",
                               .namespace_ = "my-app",
                               .max_snapshot_bytes = max_snapshot_bytes,
                               .apply =
                                   [this](const std::string& text, std::string* version) {
                                     json doc = json::parse(text);
                                     std::lock_guard<std::mutex> lock(mu_);
                                     applied_.push_back(doc["version"]);
                                     if (doc["version"] == "7") return Status::Error("refused: bad weights");
                                     *version = doc["version"];
                                     return Status::Ok();
                                   }},
        log_);
    client_->Start();
  }
  std::shared_ptr<ResponseStream> Stream() {
    std::lock_guard<std::mutex> lock(mu_);
    return stream_;
  }
  size_t Applied() {
    std::lock_guard<std::mutex> lock(mu_);
    return applied_.size();
  }

  Logger log_{2, LogLevel::kOff};
  std::string dir_;
  std::unique_ptr<ServingCert> cert_;
  std::unique_ptr<control_plane::HttpsServer> server_;
  std::thread thread_;
  std::unique_ptr<DiscoveryClient> client_;
  std::atomic<int> streams_{0};
  std::mutex mu_;
  std::shared_ptr<ResponseStream> stream_;
  std::vector<std::string> applied_;
  std::vector<json> acks_;
};

// Forty snapshots of 1 KiB on one stream, with a 4 KiB limit per snapshot: all applied in
// order on the first connection (the limit is each snapshot's, not the stream's).
TEST_F(DiscoveryClientTest, EverySnapshotOfALongStreamIsAppliedAndAcknowledged) {
  StartClient(dir_ + "/root-cert.pem", 4096);
  ASSERT_TRUE(WaitUntil([&] { return Applied() == 1; }));
  for (int v = 2; v <= 40; ++v) ASSERT_TRUE(Stream()->Send(Snapshot(v, 1024)));
  ASSERT_TRUE(WaitUntil([&] { return Applied() == 40; })) << Applied();
  EXPECT_EQ(streams_.load(), 1) << "one connection carried them all";
  EXPECT_TRUE(WaitUntil([&] {
    std::lock_guard<std::mutex> lock(mu_);
    return acks_.size() == 40;
  }));
  std::lock_guard<std::mutex> lock(mu_);
  for (int v = 1; v <= 40; ++v) EXPECT_EQ(applied_[v - 1], std::to_string(v));
}

TEST_F(DiscoveryClientTest, ARefusalIsAcknowledgedWithItsReason) {
  StartClient(dir_ + "/root-cert.pem", 4096);
  ASSERT_TRUE(WaitUntil([&] { return Applied() == 1; }));
  ASSERT_TRUE(Stream()->Send(Snapshot(7, 10)));
  ASSERT_TRUE(WaitUntil([&] {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& a : acks_) {
      if (a["version"] == "7") return true;
    }
    return false;
  }));
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& a : acks_) {
    EXPECT_EQ(a["pod"], "app-1");
    EXPECT_EQ(a["namespace"], "my-app");
    EXPECT_EQ(a["error"], a["version"] == "7" ? "refused: bad weights" : "") << a.dump();
  }
}

// A snapshot past the limit ends the stream unapplied; the client reconnects and starts over.
TEST_F(DiscoveryClientTest, AnOversizedSnapshotEndsTheStreamAndTheClientReconnects) {
  StartClient(dir_ + "/root-cert.pem", 4096);
  ASSERT_TRUE(WaitUntil([&] { return Applied() == 1; }));
  ASSERT_TRUE(Stream()->Send(Snapshot(2, 10000)));
  ASSERT_TRUE(WaitUntil([&] { return streams_.load() == 2 && Applied() == 2; })) << streams_.load() << " " << Applied();
  std::lock_guard<std::mutex> lock(mu_);
  EXPECT_EQ(applied_, (std::vector<std::string>{"1", "1"})) << "the oversized one never applied; the first again";
}

// A server the mounted mesh root does not vouch for gets no request at all.
TEST_F(DiscoveryClientTest, AServerTheMeshRootDoesNotVouchForIsNeverAsked) {
  StartClient(dir_ + "/other-root.pem", 4096);
  std::this_thread::sleep_for(1500ms);  // several attempts at the first back-offs
  EXPECT_EQ(streams_.load(), 0);
  EXPECT_EQ(Applied(), 0u);
}

}  // namespace
}  // namespace tern::proxy
