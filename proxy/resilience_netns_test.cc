// tern-proxy's resilience in a pod behind tern-init's capture, against scripted backends on the
// peer: the seed's retries hide a v1 failing 30 % of the time; outlier detection ejects an
// endpoint failing five times in a row and returns it after baseEjectionTime; maxConnections 1
// with http1MaxPendingRequests 1 refuses the third concurrent request at once; fault
// injection's percentages; per-try timeouts; what is never retried (a POST the upstream saw,
// an answer that broke off); connect failures exhausting retries; the load balancers.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "proxy/testing/proxy_in_pod.h"

namespace tern::proxy::testing_support {
namespace {

int StatusOf(const std::string& res) { return res.size() > 12 ? std::atoi(res.c_str() + 9) : 0; }

using ResilienceInPod = ProxyInPod;

// One worker: connection limits are exact (with several, each worker may always open one).
class OneWorkerPod : public ProxyInPod {
  std::vector<std::string> ExtraArgs() const override { return {"--concurrency", "1"}; }
};

std::string Get(const std::string& path, const std::string& extra = "") {
  return "GET " + path + " HTTP/1.1\r\nHost: product-service\r\n" + extra + "\r\n";
}

TEST_F(ResilienceInPod, TheSeedsRetriesHideAV1Failing30Percent) {
  LOAD_SNAPSHOT(SeedSnapshot(), "seed");
  // Three requests in every ten fail with 503, spread out: 30 %.
  auto flaky = [](int n, const std::string&) { return Reply{.status = (n % 10 == 0 || n % 10 == 3 || n % 10 == 6) ? 503 : 200}; };
  Backend v1(net_->peer, {"10.200.0.2", 8080}, "v1", flaky), v2(net_->peer, {"10.200.0.3", 8080}, "v2", flaky);
  ASSERT_TRUE(v1.ok() && v2.ok());
  int app = nettest::ConnectSocket(net_->pod, {"10.96.0.20", 8080}, 1000);
  ASSERT_GE(app, 0);
  const int requests = 1000;
  int errors = 0;
  for (int i = 0; i < requests; ++i) {
    std::string res = Exchange(app, Get("/items"));
    ASSERT_FALSE(res.empty()) << "request " << i << Log().substr(0, 2000);
    errors += StatusOf(res) != 200;
  }
  close(app);
  int attempts = v1.requests() + v2.requests();
  std::printf("  %d requests: %d errors at the client; %d upstream attempts (v1 %d, v2 %d)\n", requests, errors, attempts,
              v1.requests(), v2.requests());
  EXPECT_LT(errors * 100, requests) << "under 1 % of errors reach the client";
  EXPECT_GT(attempts, requests * 13 / 10 - 50) << "the failures were retried";
  EXPECT_LE(attempts, requests * 4) << "attempts stay within (1 + retries) per request";
  EXPECT_FALSE(v1.seen().empty() || v2.seen().empty());
}

TEST_F(ResilienceInPod, AnEndpointFailingFiveTimesInARowIsEjectedAndReturns) {
  // Both endpoints in one cluster, taken in turn; no retries (the default policy would retry).
  LOAD_SNAPSHOT(ProductSnapshot("outlier", "ALLOW_ANY",
                                ProductResources("      retries: {attempts: 0}\n",
                                                 "{loadBalancer: {simple: ROUND_ROBIN}, outlierDetection: "
                                                 "{consecutive5xxErrors: 5, interval: 1s, baseEjectionTime: 2s, maxEjectionPercent: 50}}",
                                                 "{host: product-service}")),
                "outlier");
  Backend bad(net_->peer, {"10.200.0.2", 8080}, "bad", [](int, const std::string&) { return Reply{.status = 500}; });
  Backend good(net_->peer, {"10.200.0.3", 8080}, "good");
  int app = nettest::ConnectSocket(net_->pod, {"10.96.0.20", 8080}, 1000);
  ASSERT_GE(app, 0);
  int failures = 0;
  for (int i = 0; i < 10; ++i) failures += StatusOf(Exchange(app, Get("/"))) == 500;
  EXPECT_EQ(failures, 5) << "round robin: half of ten reach the bad endpoint, the fifth ejects it";
  EXPECT_EQ(bad.requests(), 5);
  auto ejected_at = std::chrono::steady_clock::now();
  for (int i = 0; i < 30; ++i) EXPECT_EQ(StatusOf(Exchange(app, Get("/"))), 200) << "ejected: all to the good endpoint";
  EXPECT_EQ(bad.requests(), 5);
  std::this_thread::sleep_until(ejected_at + 2200ms);
  for (int i = 0; i < 10; ++i) Exchange(app, Get("/"));
  EXPECT_GT(bad.requests(), 5) << "back after baseEjectionTime";
  close(app);
}

TEST_F(OneWorkerPod, AtMaxConnectionsOneAndOnePendingTheThirdRequestGets503AtOnce) {
  LOAD_SNAPSHOT(ProductSnapshot("pool", "ALLOW_ANY",
                                ProductResources("", "{connectionPool: {tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 1}}}")),
                "pool");
  Backend v1(net_->peer, {"10.200.0.2", 8080}, "v1", [](int, const std::string&) { return Reply{.delay = 800ms}; });
  struct Result {
    int status = 0;
    std::chrono::milliseconds took{0};
  };
  std::vector<Result> results(3);
  std::vector<std::thread> clients;
  for (int i = 0; i < 3; ++i) {
    clients.emplace_back([&, i] {
      std::this_thread::sleep_for(i * 150ms);  // in order: the first holds the connection, the second waits
      int app = nettest::ConnectSocket(net_->pod, {"10.96.0.20", 8080}, 1000);
      if (app < 0) return;
      auto start = std::chrono::steady_clock::now();
      results[i].status = StatusOf(Exchange(app, Get("/slow")));
      results[i].took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
      close(app);
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(results[0].status, 200);
  EXPECT_EQ(results[1].status, 200) << "the pending request is served once the connection is free";
  EXPECT_GE(results[1].took, 1000ms) << "it waited for the first";
  EXPECT_EQ(results[2].status, 503);
  EXPECT_LT(results[2].took, 400ms) << "overflow is answered at once";
  EXPECT_EQ(v1.most_in_flight(), 1) << "never more than one connection in use";
  EXPECT_EQ(v1.connections(), 1);
  ASSERT_TRUE(WaitFor([&] { return Log().find("\"response_code\":503,\"response_flags\":\"UO\"") != std::string::npos; })) << Log();
}

TEST_F(ResilienceInPod, FaultInjectionPercentagesHold) {
  LOAD_SNAPSHOT(ProductSnapshot("fault", "ALLOW_ANY",
                                ProductResources("      fault:\n"
                                                 "        abort: {httpStatus: 418, percentage: {value: 25}}\n"
                                                 "        delay: {fixedDelay: 5ms, percentage: {value: 50}}\n"
                                                 "      retries: {attempts: 0}\n",
                                                 "")),
                "fault");
  Backend v1(net_->peer, {"10.200.0.2", 8080}, "v1");
  int app = nettest::ConnectSocket(net_->pod, {"10.96.0.20", 8080}, 1000);
  ASSERT_GE(app, 0);
  const int n = 800;
  int aborted = 0;
  for (int i = 0; i < n; ++i) aborted += StatusOf(Exchange(app, Get("/"))) == 418;
  close(app);
  EXPECT_EQ(v1.requests(), n - aborted) << "an aborted request never reaches the upstream";
  // Three standard deviations: 25 % of 800 is 200 ± 37; delays (drawn independently) 50 %,
  // 400 ± 43, of which the aborted ones waited too (flags DI,FI).
  EXPECT_NEAR(aborted, 200, 37);
  int delayed_only = 0, delayed_aborts = 0;
  ASSERT_TRUE(WaitFor([&] {
    std::string log = Log();
    delayed_only = Count(log, "\"response_flags\":\"DI\"");
    delayed_aborts = Count(log, "\"response_code\":418,\"response_flags\":\"DI,FI\"");
    return Count(log, "\"msg\":\"access\"") >= n;
  }));
  EXPECT_EQ(Count(Log(), "\"response_code\":418,\"response_flags\":\"FI\"") + delayed_aborts, aborted);
  EXPECT_NEAR(delayed_only + delayed_aborts, n / 2, 43);
  EXPECT_NEAR(delayed_aborts, aborted / 2, 3 * 7.1) << "half the aborts were delayed first";
}

TEST_F(ResilienceInPod, PerTryTimeoutsAndWhatIsNeverRetried) {
  LOAD_SNAPSHOT(ProductSnapshot("retries", "ALLOW_ANY",
                                ProductResources("      retries: {attempts: 2, perTryTimeout: 300ms, retryOn: 5xx}\n", "")),
                "retries");
  // /hang stalls the first time; /post answers 503; /partial breaks off mid-body.
  Backend v1(net_->peer, {"10.200.0.2", 8080}, "v1", [](int n, const std::string& line) {
    if (line.find("/hang") != std::string::npos && n == 0) return Reply{.delay = 3s};
    if (line.find("POST") == 0) return Reply{.status = 503};
    if (line.find("/partial") != std::string::npos) return Reply{.break_mid_body = true};
    return Reply{};
  });
  int app = nettest::ConnectSocket(net_->pod, {"10.96.0.20", 8080}, 1000);
  ASSERT_GE(app, 0);
  auto start = std::chrono::steady_clock::now();
  std::string res = Exchange(app, Get("/hang"));
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(StatusOf(res), 200) << res;
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 2s) << "the stalled try was abandoned at its per-try timeout";
  EXPECT_EQ(v1.requests(), 2);

  res = Exchange(app, "POST /post HTTP/1.1\r\nHost: product-service\r\nContent-Length: 2\r\n\r\nhi");
  EXPECT_EQ(StatusOf(res), 503);
  EXPECT_EQ(v1.requests(), 3) << "a POST the upstream answered is not sent again";
  close(app);

  // A big answer breaking off after its header went out: the client's connection ends.
  app = nettest::ConnectSocket(net_->pod, {"10.96.0.20", 8080}, 1000);
  ASSERT_GE(app, 0);
  res = Exchange(app, Get("/partial/big"));
  EXPECT_EQ(res.find("HTTP/1.1 200"), 0u) << "the header had reached the client: " << res.substr(0, 100);
  EXPECT_LT(res.size(), 300000u) << "and only part of the body";
  EXPECT_EQ(nettest::Receive(app, 1 << 16), "") << "the connection ends instead of a complete-looking answer";
  EXPECT_EQ(v1.requests(), 4) << "an answer that began is never retried";
  close(app);
  // A small one breaking off before anything reached the client (its body is held whole before
  // the answer goes out): the attempt failed as a reset does, so 5xx retries it; each try breaks
  // off the same way, and the client gets 503 (UC) after the retries (URX).
  app = nettest::ConnectSocket(net_->pod, {"10.96.0.20", 8080}, 1000);
  ASSERT_GE(app, 0);
  res = Exchange(app, Get("/partial"));
  EXPECT_EQ(StatusOf(res), 503) << res;
  EXPECT_EQ(v1.requests(), 7);
  close(app);
  ASSERT_TRUE(WaitFor([&] { return Log().find("\"path\":\"/partial\"") != std::string::npos; })) << Log();
  EXPECT_NE(Log().find("\"path\":\"/partial/big\",\"protocol\":\"HTTP/1.1\",\"response_code\":200,\"response_flags\":\"UPE\""),
            std::string::npos)
      << Log();
  EXPECT_NE(Log().find("\"path\":\"/partial\",\"protocol\":\"HTTP/1.1\",\"response_code\":503,\"response_flags\":\"UC,URX\""),
            std::string::npos)
      << Log();
}

TEST_F(ResilienceInPod, ConnectFailuresAreRetriedThenReportedWithUrx) {
  // Nothing listens on v1: Istio's default policy retries connect failures twice.
  LOAD_SNAPSHOT(ProductSnapshot("refused", "ALLOW_ANY", ProductResources("", "")), "refused");
  int app = nettest::ConnectSocket(net_->pod, {"10.96.0.20", 8080}, 1000);
  ASSERT_GE(app, 0);
  std::string res = Exchange(app, "POST / HTTP/1.1\r\nHost: product-service\r\nContent-Length: 2\r\n\r\nhi");
  EXPECT_EQ(StatusOf(res), 503) << res;
  EXPECT_NE(res.find("upstream connect error"), std::string::npos) << res;
  close(app);
  ASSERT_TRUE(WaitFor([&] { return Log().find("\"response_flags\":\"UF,URX\"") != std::string::npos; })) << Log();
}

TEST_F(ResilienceInPod, RoundRobinAlternatesAndConsistentHashPinsAKey) {
  LOAD_SNAPSHOT(ProductSnapshot("rr", "ALLOW_ANY",
                                ProductResources("", "{loadBalancer: {simple: ROUND_ROBIN}}", "{host: product-service}")),
                "rr");
  Backend a(net_->peer, {"10.200.0.2", 8080}, "a"), b(net_->peer, {"10.200.0.3", 8080}, "b");
  int app = nettest::ConnectSocket(net_->pod, {"10.96.0.20", 8080}, 1000);
  ASSERT_GE(app, 0);
  for (int i = 0; i < 40; ++i) Exchange(app, Get("/"));
  EXPECT_EQ(a.requests(), 20);
  EXPECT_EQ(b.requests(), 20);
  close(app);

  LOAD_SNAPSHOT(ProductSnapshot("hash", "ALLOW_ANY",
                                ProductResources("", "{loadBalancer: {consistentHash: {httpHeaderName: x-user}}}",
                                                 "{host: product-service}")),
                "hash");
  app = nettest::ConnectSocket(net_->pod, {"10.96.0.20", 8080}, 1000);
  ASSERT_GE(app, 0);
  for (const char* user : {"alice", "bob", "carol", "dave"}) {
    std::string first = Exchange(app, Get("/", std::string("x-user: ") + user + "\r\n"));
    std::string backend = first.find("x-backend: a") != std::string::npos ? "a" : "b";
    for (int i = 0; i < 10; ++i) {
      std::string res = Exchange(app, Get("/", std::string("x-user: ") + user + "\r\n"));
      EXPECT_NE(res.find("x-backend: " + backend), std::string::npos) << user << " stays on " << backend;
    }
  }
  close(app);
}

}  // namespace
}  // namespace tern::proxy::testing_support
