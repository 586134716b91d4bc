// TokenReview against FakeApiServer, as kube-apiserver answers it: a pod's projected token is
// that pod's, for its audience only; an unknown token and another audience are refused with the
// server's reason; an API server that cannot be asked is "unavailable", never "refused".
#include "core/kube/token_review.h"

#include <gtest/gtest.h>

#include "core/kube/fake_apiserver.h"

namespace tern::kube {
namespace {

using namespace std::chrono_literals;
using Outcome = TokenVerdict::Outcome;

class TokenReviewTest : public ::testing::Test {
 protected:
  void SetUp() override {
    api_.AddToken("web-token", "shop", "web", "web-7d9f", {"istio-ca"});
    auto client = Client::Create(ClusterConfig{"127.0.0.1", api_.port(), api_.ca_pem(), "ternd", "", ""}, 2000ms);
    ASSERT_TRUE(client.ok());
    client_ = std::move(*client);
  }
  FakeApiServer api_{"ternd"};
  std::unique_ptr<Client> client_;
};

TEST_F(TokenReviewTest, APodsTokenNamesThePodAndItsServiceAccount) {
  TokenVerdict v = ReviewToken(*client_, "web-token", "istio-ca");
  ASSERT_EQ(v.outcome, Outcome::kAuthenticated) << v.why;
  EXPECT_EQ(v.who.namespace_, "shop");
  EXPECT_EQ(v.who.service_account, "web");
  EXPECT_EQ(v.who.pod_name, "web-7d9f");
  EXPECT_EQ(v.who.pod_uid, "uid-pod-web-7d9f");
}

TEST_F(TokenReviewTest, AnUnknownTokenOrAnotherAudienceIsRefusedWithTheServersReason) {
  TokenVerdict unknown = ReviewToken(*client_, "forged", "istio-ca");
  EXPECT_EQ(unknown.outcome, Outcome::kRefused);
  EXPECT_NE(unknown.why.find("invalid bearer token"), std::string::npos) << unknown.why;
  TokenVerdict audience = ReviewToken(*client_, "web-token", "https://kubernetes.default.svc.cluster.local");
  EXPECT_EQ(audience.outcome, Outcome::kRefused);
  EXPECT_NE(audience.why.find("is invalid for the target audiences"), std::string::npos) << audience.why;
}

TEST_F(TokenReviewTest, AnApiServerThatCannotBeAskedIsUnavailableNotARefusal) {
  auto wrong = Client::Create(ClusterConfig{"127.0.0.1", api_.port(), api_.ca_pem(), "not-ternd", "", ""}, 2000ms);
  ASSERT_TRUE(wrong.ok());
  TokenVerdict denied = ReviewToken(**wrong, "web-token", "istio-ca");  // ternd itself may not ask
  EXPECT_EQ(denied.outcome, Outcome::kUnavailable);
  EXPECT_NE(denied.why.find("401"), std::string::npos) << denied.why;
  int port;
  {
    FakeApiServer gone("ternd");
    port = gone.port();
  }
  auto down = Client::Create(ClusterConfig{"127.0.0.1", port, api_.ca_pem(), "ternd", "", ""}, 300ms);
  ASSERT_TRUE(down.ok());
  EXPECT_EQ(ReviewToken(**down, "web-token", "istio-ca").outcome, Outcome::kUnavailable);
}

TEST_F(TokenReviewTest, TheReviewerAsksOncePerTokenAndNeverCachesAnUnavailableAnswer) {
  TokenReviewer reviewer(*client_, "istio-ca", 60s, 2);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(reviewer.Review("web-token").outcome, Outcome::kAuthenticated);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(reviewer.Review("forged").outcome, Outcome::kRefused);
  EXPECT_EQ(reviewer.reviews(), 2u);
  EXPECT_EQ(api_.token_reviews(), 2);
  // Past its capacity (2) the oldest verdict goes: the first token is asked about again.
  EXPECT_EQ(reviewer.Review("third").outcome, Outcome::kRefused);
  EXPECT_EQ(reviewer.Review("web-token").outcome, Outcome::kAuthenticated);
  EXPECT_EQ(api_.token_reviews(), 4);

  auto wrong = Client::Create(ClusterConfig{"127.0.0.1", api_.port(), api_.ca_pem(), "not-ternd", "", ""}, 2000ms);
  ASSERT_TRUE(wrong.ok());
  TokenReviewer failing(**wrong, "istio-ca");
  EXPECT_EQ(failing.Review("web-token").outcome, Outcome::kUnavailable);
  EXPECT_EQ(failing.Review("web-token").outcome, Outcome::kUnavailable);
  EXPECT_EQ(failing.reviews(), 2u) << "an unavailable answer is asked again";
}

TEST_F(TokenReviewTest, AVerdictExpiresAfterItsTtl) {
  TokenReviewer reviewer(*client_, "istio-ca", 1s);
  EXPECT_EQ(reviewer.Review("web-token").outcome, Outcome::kAuthenticated);
  std::this_thread::sleep_for(1100ms);
  EXPECT_EQ(reviewer.Review("web-token").outcome, Outcome::kAuthenticated);
  EXPECT_EQ(reviewer.reviews(), 2u);
}

}  // namespace
}  // namespace tern::kube
