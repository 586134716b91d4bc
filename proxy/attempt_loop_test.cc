// The attempt loop, pure: what follows each try for every kind of outcome (answered, connect
// failure, reset on a fresh or a kept-alive connection, refused stream, per-try and route
// timeout, garbage, a pool's refusal) under Istio's default retries, a route's own retries, and
// none (inbound); the flags a failure that stands leaves, in Envoy's order. One table, one row a
// sequence of tries.
#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "core/istio/virtual_service.h"
#include "proxy/attempt_loop.h"
#include "proxy/response_flags.h"

namespace tern::proxy {
namespace {

using namespace std::chrono_literals;
constexpr ResponseFlag kNone = ResponseFlag::kNone, kUF = ResponseFlag::kUpstreamConnectionFailure,
                       kUC = ResponseFlag::kUpstreamConnectionTermination, kUT = ResponseFlag::kUpstreamRequestTimeout,
                       kUPE = ResponseFlag::kUpstreamProtocolError, kUO = ResponseFlag::kUpstreamOverflow;

TEST(ResponseFlags, TextIsEnvoysShortNamesInEnvoysOrder) {
  EXPECT_EQ(ResponseFlags().ToString(), "-");
  EXPECT_EQ(ResponseFlags(kUF).ToString(), "UF");
  EXPECT_EQ((ResponseFlag::kUpstreamRetryLimitExceeded | kUF).ToString(), "UF,URX");
  EXPECT_EQ((kUF | ResponseFlag::kUpstreamRetryLimitExceeded).ToString(), "UF,URX");
  EXPECT_EQ((ResponseFlag::kFaultInjected | ResponseFlag::kDelayInjected).ToString(), "DI,FI");
  EXPECT_EQ((kUPE | kUO).ToString(), "UO,UPE");
  ResponseFlags all;
  for (ResponseFlag f : {ResponseFlag::kDownstreamRemoteReset, ResponseFlag::kNoClusterFound, kUPE,
                         ResponseFlag::kDownstreamProtocolError, ResponseFlag::kUpstreamRetryLimitExceeded,
                         ResponseFlag::kDownstreamConnectionTermination, ResponseFlag::kRateLimited,
                         ResponseFlag::kFaultInjected, ResponseFlag::kDelayInjected, ResponseFlag::kNoRouteFound, kUO,
                         kUC, kUF, kUT, ResponseFlag::kNoHealthyUpstream}) {
    all |= f;
  }
  EXPECT_EQ(all.ToString(), "UH,UT,UF,UC,UO,NR,DI,FI,RL,DC,URX,DPE,UPE,NC,DR");
  EXPECT_TRUE(all.Has(ResponseFlag::kRateLimited));
  EXPECT_FALSE(ResponseFlags(kUF).Has(kUC));
}

enum class Policy { kIstioDefault, kFiveXxTwice, kNoRetries };

struct Try {
  ResponseFlag failure = kNone;
  unsigned status = 0;
  bool reused = false;
  bool replayable = true;
  bool refused_stream = false;
};

struct Row {
  const char* name;
  Policy policy;
  const char* method;
  std::vector<Try> tries;
  std::vector<NextStep> steps;  // what the loop says after each try
  const char* flags;            // what stands at the end
};

const Row kRows[] = {
    {"answered at once", Policy::kIstioDefault, "GET", {{.status = 200}}, {NextStep::kDeliver}, "-"},
    {"connect failures spend the default retries", Policy::kIstioDefault, "GET", {{kUF}, {kUF}, {kUF}},
     {NextStep::kRetry, NextStep::kRetry, NextStep::kFail}, "UF,URX"},
    {"a POST that never reached the upstream is retried", Policy::kIstioDefault, "POST", {{kUF}, {.status = 201}},
     {NextStep::kRetry, NextStep::kDeliver}, "-"},
    {"503 is retried by default, then delivered", Policy::kIstioDefault, "GET", {{.status = 503}, {.status = 503}, {.status = 503}},
     {NextStep::kRetry, NextStep::kRetry, NextStep::kDeliver}, "URX"},
    {"a reset is not in the default retryOn", Policy::kIstioDefault, "GET", {{kUC}}, {NextStep::kFail}, "UC"},
    {"a stale kept-alive connection is replaced once, unseen", Policy::kIstioDefault, "GET",
     {{kUC, 0, true}, {kUC, 0, true}}, {NextStep::kReplaceStale, NextStep::kFail}, "UC"},
    {"a POST on a stale connection is not sent again", Policy::kIstioDefault, "POST", {{kUC, 0, true}},
     {NextStep::kFail}, "UC"},
    {"a refused stream was never processed: retried", Policy::kIstioDefault, "POST",
     {{.failure = kUC, .refused_stream = true}, {.status = 200}}, {NextStep::kRetry, NextStep::kDeliver}, "-"},
    {"a pool's refusal is never retried", Policy::kIstioDefault, "GET", {{kUO}}, {NextStep::kFail}, "UO"},
    {"5xx covers resets, timeouts and garbage", Policy::kFiveXxTwice, "GET", {{kUC}, {kUT}, {kUPE}},
     {NextStep::kRetry, NextStep::kRetry, NextStep::kFail}, "URX,UPE"},
    {"a body not kept cannot be sent again", Policy::kFiveXxTwice, "PUT", {{.failure = kUC, .replayable = false}},
     {NextStep::kFail}, "UC"},
    {"5xx retries an answered 500, 4xx stands", Policy::kFiveXxTwice, "GET", {{.status = 500}, {.status = 404}},
     {NextStep::kRetry, NextStep::kDeliver}, "-"},
    {"inbound: no retries", Policy::kNoRetries, "GET", {{kUF}}, {NextStep::kFail}, "UF"},
    {"inbound: the app's 503 is its answer", Policy::kNoRetries, "GET", {{.status = 503}}, {NextStep::kDeliver}, "-"},
    {"inbound: a stale connection to the app is still replaced", Policy::kNoRetries, "GET", {{kUC, 0, true}, {.status = 200}},
     {NextStep::kReplaceStale, NextStep::kDeliver}, "-"},
};

TEST(AttemptLoop, WhatFollowsEachTry) {
  istio::HttpRetry five_xx{.attempts = 2, .retry_on = {"5xx"}};
  for (const Row& row : kRows) {
    Route route;
    route.retry = CompileRetryPolicy(row.policy == Policy::kFiveXxTwice ? &five_xx : nullptr);
    AttemptLoop loop(row.policy == Policy::kNoRetries ? nullptr : &route, nullptr, nullptr, {}, std::nullopt, row.method, false);
    loop.RequestComplete();
    ResponseFlags flags;
    ASSERT_EQ(row.tries.size(), row.steps.size()) << row.name;
    for (size_t i = 0; i < row.tries.size(); ++i) {
      const Try& t = row.tries[i];
      loop.Begin();
      NextStep step = loop.After({.failure = t.failure, .refused_stream = t.refused_stream, .status = t.status,
                                  .reused_connection = t.reused, .replayable = t.replayable},
                                 flags);
      EXPECT_EQ(step, row.steps[i]) << row.name << ", try " << i + 1;
    }
    EXPECT_EQ(flags.ToString(), row.flags) << row.name;
  }
}

TEST(AttemptLoop, TheRoutesTimeoutStopsRetriesWithoutUrx) {
  istio::HttpRoute spec;
  spec.timeout = std::chrono::milliseconds(1);
  Route route;
  route.spec = &spec;
  istio::HttpRetry retries{.attempts = 5, .retry_on = {"5xx"}};
  route.retry = CompileRetryPolicy(&retries);
  AttemptLoop loop(&route, nullptr, nullptr, {}, std::nullopt, "GET", false);
  EXPECT_EQ(loop.give_up(), AttemptLoop::Clock::time_point::max()) << "no deadline before the request is whole";
  loop.RequestComplete();
  const auto deadline = loop.give_up();
  std::this_thread::sleep_for(5ms);
  loop.RequestComplete();
  EXPECT_EQ(loop.give_up(), deadline) << "the route's timeout starts once";
  ResponseFlags flags;
  EXPECT_EQ(loop.After({.failure = kUT}, flags), NextStep::kFail);
  EXPECT_EQ(flags.ToString(), "UT");
}

TEST(AttemptLoop, APerTryTimeoutIsRetriedWithinTheRoutesTimeout) {
  istio::HttpRoute spec;
  spec.timeout = std::chrono::seconds(30);
  istio::HttpRetry retries{.attempts = 1, .per_try_timeout = std::chrono::milliseconds(200), .retry_on = {"5xx"}};
  Route route;
  route.spec = &spec;
  route.retry = CompileRetryPolicy(&retries);
  AttemptLoop loop(&route, nullptr, nullptr, {}, std::nullopt, "GET", false);
  loop.RequestComplete();
  const auto before = AttemptLoop::Clock::now();
  const auto try_deadline = loop.TryDeadline();
  const auto after = AttemptLoop::Clock::now();
  EXPECT_LT(try_deadline, loop.give_up());
  EXPECT_GE(try_deadline, before + 200ms);
  EXPECT_LE(try_deadline, after + 200ms);
  ResponseFlags flags;
  EXPECT_EQ(loop.After({.failure = kUT}, flags), NextStep::kRetry);
  EXPECT_EQ(loop.After({.failure = kUT}, flags), NextStep::kFail);
  EXPECT_EQ(flags.ToString(), "UT,URX");
}

}  // namespace
}  // namespace tern::proxy
