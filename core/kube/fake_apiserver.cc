#include "core/kube/fake_apiserver.h"

#include <httplib.h>
#include <openssl/pem.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <vector>

#include "core/base/base64.h"

namespace tern::kube {

namespace {

nlohmann::json StatusObject(int code, const std::string& reason, const std::string& message) {
  return {{"kind", "Status"}, {"apiVersion", "v1"}, {"metadata", nlohmann::json::object()}, {"status", "Failure"},
          {"message", message}, {"reason", reason}, {"code", code}};
}

// A REST path split: "/api/v1" or "/apis/<group>/<version>", then [namespaces/<ns>/]<plural>[/<name>].
struct RestPath {
  std::string prefix, ns, plural, name;
  bool collection = false;
};

std::optional<RestPath> SplitPath(const std::string& path) {
  std::vector<std::string> parts;
  for (size_t at = 1; at <= path.size();) {
    size_t slash = path.find('/', at);
    if (slash == std::string::npos) slash = path.size();
    parts.push_back(path.substr(at, slash - at));
    at = slash + 1;
  }
  std::string prefix;
  size_t i;
  if (parts.size() >= 2 && parts[0] == "api") {
    prefix = "/api/" + parts[1];
    i = 2;
  } else if (parts.size() >= 3 && parts[0] == "apis") {
    prefix = "/apis/" + parts[1] + "/" + parts[2];
    i = 3;
  } else {
    return std::nullopt;
  }
  std::vector<std::string> rest(parts.begin() + static_cast<long>(i), parts.end());
  if (rest.size() == 1) return RestPath{prefix, "", rest[0], "", true};
  if (rest.size() == 2) return RestPath{prefix, "", rest[0], rest[1], false};
  if (rest.size() == 3 && rest[0] == "namespaces") return RestPath{prefix, rest[1], rest[2], "", true};
  if (rest.size() == 4 && rest[0] == "namespaces") return RestPath{prefix, rest[1], rest[2], rest[3], false};
  return std::nullopt;
}

// "/apis/<group>" of an API group's prefix; the prefix itself for the core API.
std::string GroupOf(const std::string& prefix) {
  return prefix.rfind("/apis/", 0) == 0 ? prefix.substr(0, prefix.rfind('/')) : prefix;
}

// Whether the object at `object_path` is in the collection at `collection_path`. A custom
// resource is served at every version of its group, as a CRD with several served versions is.
bool InCollection(const std::string& object_path, const std::string& collection_path) {
  auto o = SplitPath(object_path), c = SplitPath(collection_path);
  if (!o || !c || o->collection || !c->collection) return false;
  return GroupOf(o->prefix) == GroupOf(c->prefix) && o->plural == c->plural && (c->ns.empty() || c->ns == o->ns);
}

// The object as the collection at `collection_path` serves it: a custom resource in the
// collection's version; built-in kinds' LIST items with no kind and apiVersion (`listed`).
nlohmann::json Served(const std::string& collection_path, nlohmann::json object, bool listed) {
  if (collection_path.rfind("/apis/", 0) == 0) {
    object["apiVersion"] = collection_path.substr(6, collection_path.find('/', collection_path.find('/', 6) + 1) - 6);
  } else if (listed) {
    object.erase("kind");
    object.erase("apiVersion");
  }
  return object;
}

}  // namespace

// False, with the API server's 401 answered, unless the request bears the server's token.
bool FakeApiServer::Authorized(const httplib::Request& req, httplib::Response& res) const {
  if (req.get_header_value("Authorization") == "Bearer " + token_) return true;
  res.status = 401;
  res.set_content(StatusObject(401, "Unauthorized", "Unauthorized").dump(), "application/json");
  return false;
}

// One open watch: its collection, where it stands, and which knobs it has seen.
struct FakeApiServer::Watch {
  std::string collection;
  uint64_t sent = 0;  // the version of the last event written
  std::chrono::steady_clock::time_point until;
  uint64_t bookmarks = 0, drops = 0, garbage = 0;
  bool gone = false;  // asked for a compacted version: one ERROR event, then the end
};

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
  // Every watch holds a thread while it is open: room for a client's watches and its lists.
  server_->new_task_queue = [] { return new httplib::ThreadPool(48); };
  server_->Get(".*", [this](const httplib::Request& req, httplib::Response& res) {
    std::chrono::milliseconds delay;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++requests_;
      delay = delay_;
    }
    std::this_thread::sleep_for(delay);
    if (!Authorized(req, res)) return;
    std::unique_lock<std::mutex> lock(mu_);
    if (!missing_prefix_.empty() && req.path.rfind(missing_prefix_, 0) == 0) {
      res.status = 404;
      res.set_content(StatusObject(404, "NotFound", "the server could not find the requested resource").dump(),
                      "application/json");
      return;
    }
    auto it = objects_.find(req.path);
    if (it == objects_.end()) {
      if (auto rest = SplitPath(req.path); rest && rest->collection) {
        lock.unlock();
        if (req.get_param_value("watch") == "1" || req.get_param_value("watch") == "true") {
          return ServeWatch(req, res, req.path);
        }
        return ServeList(req, res, req.path);
      }
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
  server_->Post("/apis/authentication.k8s.io/v1/tokenreviews",
                 [this](const httplib::Request& req, httplib::Response& res) { ServeTokenReview(req, res); });
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

void FakeApiServer::Record(const std::string& type, const std::string& path, nlohmann::json object) {
  object["metadata"]["resourceVersion"] = std::to_string(++version_);
  events_.push_back({version_, type, path, object});
  if (type == "DELETED") objects_.erase(path);
  else objects_[path] = std::move(object);
  changed_.notify_all();
}

void FakeApiServer::Put(const std::string& path, nlohmann::json object) {
  // As the real server stores it: the namespace and name its path gives.
  if (auto rest = SplitPath(path); rest && !rest->collection) {
    if (!rest->ns.empty()) object["metadata"]["namespace"] = rest->ns;
    object["metadata"]["name"] = rest->name;
  }
  std::lock_guard<std::mutex> lock(mu_);
  Record(objects_.count(path) ? "MODIFIED" : "ADDED", path, std::move(object));
}

void FakeApiServer::Delete(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = objects_.find(path);
  if (it != objects_.end()) Record("DELETED", path, it->second);
}

void FakeApiServer::Compact() {
  std::lock_guard<std::mutex> lock(mu_);
  events_.clear();
  oldest_ = version_;
}

void FakeApiServer::AddToken(const std::string& token, const std::string& ns, const std::string& service_account,
                             const std::string& pod, std::vector<std::string> audiences) {
  std::lock_guard<std::mutex> lock(mu_);
  tokens_[token] = {ns, service_account, pod, std::move(audiences)};
}

int FakeApiServer::token_reviews() const {
  std::lock_guard<std::mutex> lock(mu_);
  return token_reviews_;
}

// As kube-apiserver answers: 201 with the review and its status; an unknown token or another
// audience is "authenticated": false with the server's reason, never an HTTP error.
void FakeApiServer::ServeTokenReview(const httplib::Request& req, httplib::Response& res) {
  std::chrono::milliseconds delay;
  {
    std::lock_guard<std::mutex> lock(mu_);
    delay = delay_;
  }
  std::this_thread::sleep_for(delay);
  std::lock_guard<std::mutex> lock(mu_);
  ++requests_;
  if (!Authorized(req, res)) return;
  ++token_reviews_;
  auto review = nlohmann::json::parse(req.body, nullptr, false);
  if (!review.is_object() || !review.contains("spec") || !review["spec"].is_object() ||
      !review["spec"].value("token", nlohmann::json()).is_string()) {
    res.status = 400;
    res.set_content(StatusObject(400, "BadRequest", "spec.token: Required value").dump(), "application/json");
    return;
  }
  const std::string token = review["spec"]["token"];
  std::vector<std::string> wanted = {"https://kubernetes.default.svc.cluster.local"};
  if (review["spec"].contains("audiences") && review["spec"]["audiences"].is_array() && !review["spec"]["audiences"].empty()) {
    wanted = review["spec"]["audiences"].get<std::vector<std::string>>();
  }
  nlohmann::json status = {{"authenticated", false}, {"user", nlohmann::json::object()}};
  auto it = tokens_.find(token);
  if (it == tokens_.end()) {
    status["error"] = "[invalid bearer token, square/go-jose: error in cryptographic primitive]";
  } else {
    nlohmann::json both = nlohmann::json::array();
    for (const auto& a : wanted) {
      if (std::find(it->second.audiences.begin(), it->second.audiences.end(), a) != it->second.audiences.end()) both.push_back(a);
    }
    if (both.empty()) {
      status["error"] = "[invalid bearer token, token audiences " + nlohmann::json(it->second.audiences).dump() +
                        " is invalid for the target audiences " + nlohmann::json(wanted).dump() + "]";
    } else {
      const TokenOwner& o = it->second;
      status = {{"authenticated", true},
                {"audiences", both},
                {"user",
                 {{"username", "system:serviceaccount:" + o.ns + ":" + o.service_account},
                  {"uid", "uid-" + o.ns + "-" + o.service_account},
                  {"groups", {"system:serviceaccounts", "system:serviceaccounts:" + o.ns, "system:authenticated"}},
                  {"extra",
                   {{"authentication.kubernetes.io/pod-name", {o.pod}},
                    {"authentication.kubernetes.io/pod-uid", {"uid-pod-" + o.pod}}}}}}};
    }
  }
  review["status"] = status;
  review["metadata"] = {{"creationTimestamp", nullptr}};
  res.status = 201;
  res.set_content(review.dump(), "application/json");
}

void FakeApiServer::set_missing_prefix(const std::string& prefix) {
  std::lock_guard<std::mutex> lock(mu_);
  missing_prefix_ = prefix;
}

void FakeApiServer::Bookmark() {
  std::lock_guard<std::mutex> lock(mu_);
  ++bookmarks_;
  changed_.notify_all();
}

void FakeApiServer::DropWatches() {
  std::lock_guard<std::mutex> lock(mu_);
  ++drops_;
  changed_.notify_all();
}

void FakeApiServer::SendGarbageToWatches() {
  std::lock_guard<std::mutex> lock(mu_);
  ++garbage_;
  changed_.notify_all();
}

std::string FakeApiServer::resource_version() const {
  std::lock_guard<std::mutex> lock(mu_);
  return std::to_string(version_);
}

int FakeApiServer::open_watches() const {
  std::lock_guard<std::mutex> lock(mu_);
  return open_watches_;
}

int FakeApiServer::watch_requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return watch_requests_;
}

int FakeApiServer::list_requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return list_requests_;
}

void FakeApiServer::ServeList(const httplib::Request& req, httplib::Response& res, const std::string& collection) {
  std::lock_guard<std::mutex> lock(mu_);
  ++list_requests_;
  std::vector<const std::pair<const std::string, nlohmann::json>*> all;
  for (const auto& entry : objects_) {
    if (InCollection(entry.first, collection)) all.push_back(&entry);
  }
  // limit/continue: the token names the index to go on from, in a form that needs escaping.
  size_t from = 0, limit = all.size();
  if (req.has_param("limit")) limit = std::max<size_t>(1, std::strtoul(req.get_param_value("limit").c_str(), nullptr, 10));
  if (req.has_param("continue")) {
    const std::string token = req.get_param_value("continue");
    if (token.rfind("from/", 0) != 0 || token.back() != '=') {
      res.status = 400;
      res.set_content(StatusObject(400, "BadRequest", "invalid continue token").dump(), "application/json");
      return;
    }
    from = std::strtoul(token.c_str() + 5, nullptr, 10);
  }
  nlohmann::json items = nlohmann::json::array();
  for (size_t i = from; i < all.size() && i < from + limit; ++i) items.push_back(Served(collection, all[i]->second, true));
  nlohmann::json meta = {{"resourceVersion", std::to_string(version_)}};
  if (from + limit < all.size()) meta["continue"] = "from/" + std::to_string(from + limit) + "=";
  res.set_content(nlohmann::json{{"kind", "List"}, {"apiVersion", "v1"}, {"metadata", meta}, {"items", items}}.dump(),
                  "application/json");
}

void FakeApiServer::ServeWatch(const httplib::Request& req, httplib::Response& res, const std::string& collection) {
  auto w = std::make_shared<Watch>();
  w->collection = collection;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++watch_requests_;
    ++open_watches_;
    w->sent = std::strtoull(req.get_param_value("resourceVersion").c_str(), nullptr, 10);
    w->gone = req.has_param("resourceVersion") && w->sent < oldest_;
    w->bookmarks = req.get_param_value("allowWatchBookmarks") == "true" ? bookmarks_ : UINT64_MAX;
    w->drops = drops_;
    w->garbage = garbage_;
  }
  long timeout = req.has_param("timeoutSeconds") ? std::strtol(req.get_param_value("timeoutSeconds").c_str(), nullptr, 10) : 1800;
  w->until = std::chrono::steady_clock::now() + std::chrono::seconds(timeout);
  res.set_chunked_content_provider(
      "application/json", [this, w](size_t, httplib::DataSink& sink) { return Feed(*w, sink); },
      [this](bool) {
        std::lock_guard<std::mutex> lock(mu_);
        --open_watches_;
      });
}

bool FakeApiServer::Feed(Watch& w, httplib::DataSink& sink) {
  std::unique_lock<std::mutex> lock(mu_);
  if (w.gone) {
    const std::string why = "too old resource version: " + std::to_string(w.sent) + " (" + std::to_string(oldest_) + ")";
    std::string line = nlohmann::json{{"type", "ERROR"}, {"object", StatusObject(410, "Expired", why)}}.dump() + "\n";
    lock.unlock();
    sink.write(line.data(), line.size());
    sink.done();
    return true;
  }
  std::string out;
  for (const Event& e : events_) {
    if (e.version <= w.sent || !InCollection(e.path, w.collection)) continue;
    out += nlohmann::json{{"type", e.type}, {"object", Served(w.collection, e.object, false)}}.dump() + "\n";
    w.sent = e.version;
  }
  if (w.bookmarks != UINT64_MAX && w.bookmarks != bookmarks_) {
    w.bookmarks = bookmarks_;
    nlohmann::json object = {{"kind", SplitPath(w.collection)->plural},
                             {"metadata", {{"resourceVersion", std::to_string(version_)}}}};
    out += nlohmann::json{{"type", "BOOKMARK"}, {"object", object}}.dump() + "\n";
    w.sent = std::max(w.sent, version_);
  }
  if (w.garbage != garbage_) {
    w.garbage = garbage_;
    out += "this is not a watch event\n";
  }
  if (w.drops != drops_) {
    // Half of an event (or of a made-up one), then the connection ends without the last chunk.
    std::string half = out.empty() ? std::string(R"({"type":"ADDED","object":{"metadata":{"na)") : out.substr(0, out.size() / 2);
    lock.unlock();
    sink.write(half.data(), half.size());
    return false;
  }
  if (!out.empty()) {
    lock.unlock();
    return sink.write(out.data(), out.size());
  }
  if (std::chrono::steady_clock::now() >= w.until || !server_->is_running()) {
    lock.unlock();
    sink.done();
    return true;
  }
  changed_.wait_for(lock, std::chrono::milliseconds(50));
  return true;
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
