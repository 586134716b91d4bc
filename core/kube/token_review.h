// Who a service-account token belongs to, as the API server says: a TokenReview
// (authentication.k8s.io/v1) for one audience. An injected sidecar proves its pod with its
// projected token (the istio-token volume, audience "istio-ca" by mesh config), which is bound to
// the pod: the review names the pod as well as its service account.
#pragma once

#include <chrono>
#include <cstdint>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

#include "core/kube/client.h"

namespace tern::kube {

struct TokenIdentity {
  std::string namespace_, service_account;
  std::string pod_name, pod_uid;  // empty for a token not bound to a pod
};

struct TokenVerdict {
  enum class Outcome { kAuthenticated, kRefused, kUnavailable };
  Outcome outcome = Outcome::kUnavailable;
  TokenIdentity who;  // kAuthenticated
  std::string why;    // kRefused: why the token is not accepted; kUnavailable: why there is no answer
};

// One review, no cache. A token the server does not authenticate for `audience`, or that is not
// a service account's, is kRefused; a review that could not be made (the server down, an answer
// that is no TokenReview) is kUnavailable.
TokenVerdict ReviewToken(Client& client, const std::string& token, const std::string& audience);

// Reviews with a cache: a verdict (accepted or refused) is kept for `ttl`, by the token's SHA-256
// (the token itself is not kept), at most `capacity` of them (the oldest go first). An
// unavailable review is not kept. Thread-safe; reviews of different tokens run in parallel.
class TokenReviewer {
 public:
  TokenReviewer(Client& client, std::string audience, std::chrono::seconds ttl = std::chrono::seconds(60),
                size_t capacity = 10000);
  TokenVerdict Review(const std::string& token);
  uint64_t reviews() const;  // made of the API server (not answered from the cache)

 private:
  struct Entry {
    TokenVerdict verdict;
    std::chrono::steady_clock::time_point until;
    std::list<std::string>::iterator order;
  };
  Client& client_;
  const std::string audience_;
  const std::chrono::seconds ttl_;
  const size_t capacity_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> cache_;  // by SHA-256 of the token
  std::list<std::string> order_;                  // oldest first
  uint64_t reviews_ = 0;
};

}  // namespace tern::kube
