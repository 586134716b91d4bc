#include "core/kube/token_review.h"

#include <openssl/evp.h>

namespace tern::kube {

using nlohmann::json;

namespace {

std::string Sha256(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(data.data(), data.size(), digest, &size, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<const char*>(digest), size);
}

// The first string of user.extra[key], "" when none.
std::string Extra(const json& user, const char* key) {
  if (!user.contains("extra") || !user["extra"].is_object()) return "";
  const json& extra = user["extra"];
  if (!extra.contains(key) || !extra[key].is_array() || extra[key].empty() || !extra[key][0].is_string()) return "";
  return extra[key][0].get<std::string>();
}

}  // namespace

TokenVerdict ReviewToken(Client& client, const std::string& token, const std::string& audience) {
  TokenVerdict v;
  json review = {{"apiVersion", "authentication.k8s.io/v1"},
                 {"kind", "TokenReview"},
                 {"spec", {{"token", token}, {"audiences", json::array({audience})}}}};
  auto res = client.Post("/apis/authentication.k8s.io/v1/tokenreviews", review);
  if (!res.ok()) {
    v.why = res.status().message();
    return v;
  }
  if (res->status != 201 && res->status != 200) {
    v.why = "TokenReview: " + std::to_string(res->status) + " " + res->message();
    return v;
  }
  const json status = res->body.is_object() ? res->body.value("status", json()) : json();
  if (!status.is_object()) {
    v.why = "TokenReview: status: not an object";
    return v;
  }
  v.outcome = TokenVerdict::Outcome::kRefused;
  const bool authenticated = status.contains("authenticated") && status["authenticated"].is_boolean() &&
                             status["authenticated"].get<bool>();
  if (!authenticated) {
    const json error = status.value("error", json(""));
    v.why = error.is_string() && !error.get<std::string>().empty() ? error.get<std::string>() : "not authenticated";
    return v;
  }
  // A server that ignores the audience would accept any of the user's tokens: it must say which
  // it checked.
  const json audiences = status.value("audiences", json::array());
  bool audience_ok = false;
  if (audiences.is_array()) {
    for (const auto& a : audiences) audience_ok |= a.is_string() && a.get<std::string>() == audience;
  }
  if (!audience_ok) {
    v.why = "the token is not for audience " + audience;
    return v;
  }
  const json user = status.value("user", json::object());
  const std::string username = user.is_object() && user.value("username", json("")).is_string() ? user.value("username", "") : "";
  // "system:serviceaccount:<namespace>:<name>"
  const std::string prefix = "system:serviceaccount:";
  const size_t colon = username.find(':', prefix.size());
  if (username.rfind(prefix, 0) != 0 || colon == std::string::npos) {
    v.why = "\"" + username.substr(0, 100) + "\" is not a service account";
    return v;
  }
  v.outcome = TokenVerdict::Outcome::kAuthenticated;
  v.who.namespace_ = username.substr(prefix.size(), colon - prefix.size());
  v.who.service_account = username.substr(colon + 1);
  v.who.pod_name = Extra(user, "authentication.kubernetes.io/pod-name");
  v.who.pod_uid = Extra(user, "authentication.kubernetes.io/pod-uid");
  return v;
}

TokenReviewer::TokenReviewer(Client& client, std::string audience, std::chrono::seconds ttl, size_t capacity)
    : client_(client), audience_(std::move(audience)), ttl_(ttl), capacity_(capacity) {}

uint64_t TokenReviewer::reviews() const {
  std::lock_guard<std::mutex> lock(mu_);
  return reviews_;
}

TokenVerdict TokenReviewer::Review(const std::string& token) {
  const std::string key = Sha256(token);
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.find(key);
    if (it != cache_.end() && it->second.until > now) return it->second.verdict;
    ++reviews_;
  }
  // Outside the lock: a slow API server delays this token's review only.
  TokenVerdict verdict = ReviewToken(client_, token, audience_);
  if (verdict.outcome == TokenVerdict::Outcome::kUnavailable) return verdict;
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = cache_.find(key); it != cache_.end()) {
    order_.erase(it->second.order);
    cache_.erase(it);
  }
  while (cache_.size() >= capacity_ && !order_.empty()) {
    cache_.erase(order_.front());
    order_.pop_front();
  }
  order_.push_back(key);
  cache_[key] = Entry{verdict, now + ttl_, std::prev(order_.end())};
  return verdict;
}

}  // namespace tern::kube
