// A stand-in for kube-apiserver in tests: HTTPS with its own CA, bearer-token authentication,
// objects served at their REST paths, Status objects for errors as the real server sends them,
// and knobs for the failures a client must survive (slow answers). Test-only.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/tls/x509.h"

namespace httplib {
class SSLServer;
}

namespace tern::kube {

class FakeApiServer {
 public:
  explicit FakeApiServer(std::string token);
  ~FakeApiServer();

  int port() const { return port_; }
  const std::string& ca_pem() const { return ca_.cert_pem; }

  // Serves `object` at its REST path (/api/v1/namespaces/<ns>/pods/<name>, ...).
  void Put(const std::string& path, nlohmann::json object);
  // Every answer waits this long first (an overloaded API server).
  void set_delay(std::chrono::milliseconds delay);
  // Every answer sends its head and half its body, then nothing for `stall` (a server that
  // hangs mid-answer), then closes; zero restores whole answers.
  void set_stall_mid_body(std::chrono::milliseconds stall);
  int requests() const;
  // A kubeconfig for this server: inline CA, the bearer token `token` (the right one by default).
  std::string Kubeconfig(const std::string& token = "") const;

 private:
  std::string token_;
  PemPair ca_;
  std::unique_ptr<httplib::SSLServer> server_;
  std::thread thread_;
  int port_ = 0;
  mutable std::mutex mu_;
  std::map<std::string, nlohmann::json> objects_;
  std::chrono::milliseconds delay_{0};
  std::chrono::milliseconds stall_{0};
  int requests_ = 0;
};

}  // namespace tern::kube
