// A stand-in for kube-apiserver in tests: HTTPS with its own CA, bearer-token authentication,
// objects served at their REST paths, Status objects for errors as the real server sends them,
// and knobs for the failures a client must survive (slow answers). Collections answer LIST
// (paged by limit/continue; built-in kinds' items without kind and apiVersion, as the real server
// sends them) and WATCH as kube-apiserver does: a chunked stream of JSON lines, events after the
// asked resourceVersion, BOOKMARKs when asked, timeoutSeconds honoured, and an ERROR event with
// code 410 for a version older than the server still has. Test-only.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/tls/x509.h"

namespace httplib {
class SSLServer;
struct Request;
struct Response;
class DataSink;
}

namespace tern::kube {

class FakeApiServer {
 public:
  explicit FakeApiServer(std::string token);
  ~FakeApiServer();

  int port() const { return port_; }
  const std::string& ca_pem() const { return ca_.cert_pem; }

  // Serves `object` at its REST path (/api/v1/namespaces/<ns>/pods/<name>, ...), stamped with
  // the next resourceVersion; watches of its collection get ADDED or MODIFIED.
  void Put(const std::string& path, nlohmann::json object);
  // Removes it; watches get DELETED (with its last state, newly versioned).
  void Delete(const std::string& path);
  // The history before now is gone: a watch from an earlier version gets 410 (too old).
  void Compact();
  // Every open watch gets a BOOKMARK at the current version.
  void Bookmark();
  // Every open watch is cut: half of an event line, then the connection closes (no last chunk).
  void DropWatches();
  // Requests under `prefix` get 404, as for a kind whose CRD is not installed ("": none).
  void set_missing_prefix(const std::string& prefix);
  // Every open watch gets a line that is no JSON.
  void SendGarbageToWatches();
  // The TokenReview API (POST /apis/authentication.k8s.io/v1/tokenreviews): `token` is the
  // projected token of pod `ns`/`pod` (service account `service_account`) for `audiences`.
  void AddToken(const std::string& token, const std::string& ns, const std::string& service_account, const std::string& pod,
                std::vector<std::string> audiences);
  int token_reviews() const;
  std::string resource_version() const;
  int open_watches() const;
  int watch_requests() const;
  int list_requests() const;
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
  struct Event {
    uint64_t version;
    std::string type, path;
    nlohmann::json object;
  };
  struct Watch;
  void ServeList(const httplib::Request& req, httplib::Response& res, const std::string& collection);
  void ServeWatch(const httplib::Request& req, httplib::Response& res, const std::string& collection);
  // Writes what `w` is due (events, a bookmark, garbage, a cut); false ends the stream.
  bool Feed(Watch& w, httplib::DataSink& sink);
  void Record(const std::string& type, const std::string& path, nlohmann::json object);
  bool Authorized(const httplib::Request& req, httplib::Response& res) const;

  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::map<std::string, nlohmann::json> objects_;
  std::vector<Event> events_;
  uint64_t version_ = 1000, oldest_ = 0;
  uint64_t bookmarks_ = 0, drops_ = 0, garbage_ = 0;  // generations of the knobs above
  std::string missing_prefix_;
  struct TokenOwner {
    std::string ns, service_account, pod;
    std::vector<std::string> audiences;
  };
  std::map<std::string, TokenOwner> tokens_;
  int token_reviews_ = 0;
  void ServeTokenReview(const httplib::Request& req, httplib::Response& res);
  int open_watches_ = 0, watch_requests_ = 0, list_requests_ = 0;
  std::chrono::milliseconds delay_{0};
  std::chrono::milliseconds stall_{0};
  int requests_ = 0;
};

}  // namespace tern::kube
