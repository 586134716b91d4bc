// The fault matrix: client protocol × direction × upstream fault × retry/ejection/circuit policy,
// each pairing one row of the tables below, all run against one tern-proxy in a pod behind
// tern-init's capture (under the ci preset: ASan and UBSan). A row says what the client must
// get (a status, or an answer visibly cut off: never a whole-looking 2xx), the access log's
// response flags and how many attempts reached the upstream; after every row a probe client
// must still be served. Bugs live in the pairings no test crossed: the HTTP/2 client, a refused
// endpoint and the default retries crashed the proxy while each alone was tested.
//
// Clients: HTTP/1.1 and HTTP/2 (prior knowledge) toward HTTP/1.1 upstreams; toward HTTP/2
// upstreams, HTTP/1.1 upgraded by the DestinationRule's h2UpgradePolicy and gRPC, unary and
// streaming (the client still sending when the answer comes). gRPC clients are judged by the
// grpc-status they get: a row's 502, 503 or 504 is the proxy's own answer, due in gRPC's
// trailers-only form as UNAVAILABLE (as Envoy answers). HTTP/2 upstreams add two faults of their own: GOAWAY
// mid-stream, and GOAWAY refusing a stream the server never processed (a server restarting).
//
// Opaque TCP (a port declared tcp) has a table of its own: whether the upstream's bytes came and
// the connection's flags.
//
// Outbound, every (policy, fault, client) has its own service, so a row's ejections and pooled
// connections never leak into the next. Inbound has no policy (Istio retries and ejects only
// outbound) and no "unreachable" (the app shares the pod's network namespace: it listens or
// refuses). Attempts are counted by the fault's server (requests it read) or, where nothing
// accepts, by an nftables counter of SYNs in the upstream's namespace.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/base/ascii.h"
#include "core/capture/testing/sh.h"
#include "proxy/testing/h2_fault_backend.h"
#include "proxy/testing/proxy_in_pod.h"
#include "proxy/testing/raw_h2_client.h"

namespace tern::proxy::testing_support {
namespace {

enum class Client { kHttp1, kHttp2, kHttp1Upgraded, kGrpcUnary, kGrpcStreaming };
enum class Fault {
  kRefuses,
  kUnreachable,
  kResetBeforeAnswer,
  kResetMidBody,
  kNeverAnswers,
  kGarbage,
  kSlow,
  kCloseAfterHeaders,
  kGoawayMidBody,       // HTTP/2 upstreams only
  kGoawayBeforeAnswer,  // HTTP/2 upstreams only
};
enum class Policy { kNoRetries, kDefaultRetries, kPerTryTimeout, kOutlierEjection, kBudgetExhausted, kCircuitOpen };

constexpr Client kClients[] = {Client::kHttp1, Client::kHttp2, Client::kHttp1Upgraded, Client::kGrpcUnary, Client::kGrpcStreaming};
constexpr Fault kFaults[] = {Fault::kRefuses,      Fault::kUnreachable, Fault::kResetBeforeAnswer, Fault::kResetMidBody,
                             Fault::kNeverAnswers, Fault::kGarbage,     Fault::kSlow,              Fault::kCloseAfterHeaders,
                             Fault::kGoawayMidBody, Fault::kGoawayBeforeAnswer};
constexpr Policy kPolicies[] = {Policy::kNoRetries,       Policy::kDefaultRetries,  Policy::kPerTryTimeout,
                                Policy::kOutlierEjection, Policy::kBudgetExhausted, Policy::kCircuitOpen};

bool Http2Upstream(Client c) { return c == Client::kHttp1Upgraded || c == Client::kGrpcUnary || c == Client::kGrpcStreaming; }
bool Grpc(Client c) { return c == Client::kGrpcUnary || c == Client::kGrpcStreaming; }
bool Http2Only(Fault f) { return f == Fault::kGoawayMidBody || f == Fault::kGoawayBeforeAnswer; }
bool Accepts(Fault f) { return f != Fault::kRefuses && f != Fault::kUnreachable; }

const char* Name(Client c) {
  switch (c) {
    case Client::kHttp1: return "h1";
    case Client::kHttp2: return "h2";
    case Client::kHttp1Upgraded: return "h1-upgraded";
    case Client::kGrpcUnary: return "grpc-unary";
    case Client::kGrpcStreaming: return "grpc-streaming";
  }
  return "?";
}
const char* Name(Fault f) {
  switch (f) {
    case Fault::kRefuses: return "refuses";
    case Fault::kUnreachable: return "unreachable";
    case Fault::kResetBeforeAnswer: return "reset-before-answer";
    case Fault::kResetMidBody: return "reset-mid-body";
    case Fault::kNeverAnswers: return "never-answers";
    case Fault::kGarbage: return "garbage";
    case Fault::kSlow: return "slow";
    case Fault::kCloseAfterHeaders: return "close-after-headers";
    case Fault::kGoawayMidBody: return "goaway-mid-body";
    case Fault::kGoawayBeforeAnswer: return "goaway-before-answer";
  }
  return "?";
}
const char* Name(Policy p) {
  switch (p) {
    case Policy::kNoRetries: return "no-retries";
    case Policy::kDefaultRetries: return "default-retries";
    case Policy::kPerTryTimeout: return "per-try-timeout";
    case Policy::kOutlierEjection: return "outlier";
    case Policy::kBudgetExhausted: return "budget-exhausted";
    case Policy::kCircuitOpen: return "circuit-open";
  }
  return "?";
}

// The fault's server: HTTP/1.1 on 9000 + fault, HTTP/2 on 9200 + fault.
uint16_t Port(Fault f, bool h2 = false) { return static_cast<uint16_t>((h2 ? 9200 : 9000) + static_cast<int>(f)); }
constexpr uint16_t kHealthyPort = 9100;

// The route every outbound row uses: a 2 s timeout (so "never answers" ends; three tries of an
// unreachable endpoint end well within it, even on a loaded machine), and the policy's retries;
// connections time out after 200 ms (so "unreachable" ends).
std::string RetriesOf(Policy p) {
  switch (p) {
    case Policy::kNoRetries:
    case Policy::kOutlierEjection:
    case Policy::kCircuitOpen: return "      retries: {attempts: 0}\n";
    case Policy::kDefaultRetries: return "";  // Istio's default: 2 retries on connect-failure, refused-stream, unavailable, ...
    case Policy::kPerTryTimeout:
    case Policy::kBudgetExhausted: return "      retries: {attempts: 2, perTryTimeout: 200ms, retryOn: \"5xx,reset,connect-failure\"}\n";
  }
  return "";
}

// The DestinationRule's trafficPolicy beyond the 200 ms connectTimeout every row has. The
// budget row allows one retry in flight (maxRetries: 1) and a blocker holds it; the circuit row
// allows one request in flight (http2MaxRequests: 1, which Envoy and Tern apply to HTTP/1.1
// too) and a blocker holds it.
std::string TrafficPolicyOf(Policy p, Client c) {
  std::string http = c == Client::kHttp1Upgraded ? "h2UpgradePolicy: UPGRADE" : "";
  auto add = [&](const std::string& field) { http += (http.empty() ? "" : ", ") + field; };
  if (p == Policy::kBudgetExhausted) add("maxRetries: 1");
  if (p == Policy::kCircuitOpen) add("http2MaxRequests: 1");
  std::string policy = "{connectionPool: {tcp: {connectTimeout: 200ms}" + (http.empty() ? "" : ", http: {" + http + "}") + "}";
  if (p == Policy::kOutlierEjection) policy += ", outlierDetection: {consecutive5xxErrors: 1, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 100}";
  return policy + "}";
}

// Budget and circuit rows need a blocker that holds their cluster's one slot while the row's
// request runs; an endpoint that accepts nothing cannot be made to hold one, so those two faults
// have no such rows (the circuit or budget is never reached: each request fails on its own).
bool Applies(Policy p, Fault f) { return Accepts(f) || (p != Policy::kBudgetExhausted && p != Policy::kCircuitOpen); }

// What a client saw.
struct Seen {
  int status = 0;    // 0: no answer at all
  bool cut = false;  // the answer (or the connection) ended before it was whole
  int grpc = -1;     // gRPC clients: the grpc-status the answer carried, -1 when none
  std::string raw;
};

struct Expect {
  int status;
  bool cut;
  const char* flags;
  int attempts;
};

// One row: the fault, the policy, what the client must see, and for outlier rows what a second
// request must see (the endpoint ejected, or not when the fault is no 5xx).
struct Row {
  Fault fault;
  Policy policy;
  Expect first;
  std::optional<Expect> then = std::nullopt;
};

constexpr Expect kEjected{503, false, "UH", 0};

// Outbound, for both client protocols (the HTTP/2 client reaches these HTTP/1.1 upstreams
// through the bridge). Istio's default retries cover connect failures, not resets or
// timeouts; perTryTimeout's policy retries 5xx (which covers resets, timeouts and garbage).
const Row kOutbound[] = {
    {Fault::kRefuses, Policy::kNoRetries, {503, false, "UF", 1}},
    {Fault::kRefuses, Policy::kDefaultRetries, {503, false, "UF,URX", 3}},
    {Fault::kRefuses, Policy::kPerTryTimeout, {503, false, "UF,URX", 3}},
    {Fault::kRefuses, Policy::kOutlierEjection, {503, false, "UF", 1}, kEjected},
    {Fault::kUnreachable, Policy::kNoRetries, {503, false, "UF", 1}},
    {Fault::kUnreachable, Policy::kDefaultRetries, {503, false, "UF,URX", 3}},
    {Fault::kUnreachable, Policy::kPerTryTimeout, {503, false, "UF,URX", 3}},
    {Fault::kUnreachable, Policy::kOutlierEjection, {503, false, "UF", 1}, kEjected},
    {Fault::kResetBeforeAnswer, Policy::kNoRetries, {503, false, "UC", 1}},
    {Fault::kResetBeforeAnswer, Policy::kDefaultRetries, {503, false, "UC", 1}},
    {Fault::kResetBeforeAnswer, Policy::kPerTryTimeout, {503, false, "UC,URX", 3}},
    {Fault::kResetBeforeAnswer, Policy::kOutlierEjection, {503, false, "UC", 1}, kEjected},
    // The answer's head went out: the client sees it cut, and the 200 counted as a success.
    {Fault::kResetMidBody, Policy::kNoRetries, {200, true, "UPE", 1}},
    {Fault::kResetMidBody, Policy::kDefaultRetries, {200, true, "UPE", 1}},
    {Fault::kResetMidBody, Policy::kPerTryTimeout, {200, true, "UPE", 1}},
    {Fault::kResetMidBody, Policy::kOutlierEjection, {200, true, "UPE", 1}, Expect{200, true, "UPE", 1}},
    {Fault::kNeverAnswers, Policy::kNoRetries, {504, false, "UT", 1}},
    {Fault::kNeverAnswers, Policy::kDefaultRetries, {504, false, "UT", 1}},
    {Fault::kNeverAnswers, Policy::kPerTryTimeout, {504, false, "UT,URX", 3}},
    {Fault::kNeverAnswers, Policy::kOutlierEjection, {504, false, "UT", 1}, kEjected},
    {Fault::kGarbage, Policy::kNoRetries, {502, false, "UPE", 1}},
    {Fault::kGarbage, Policy::kDefaultRetries, {502, false, "UPE", 1}},
    {Fault::kGarbage, Policy::kPerTryTimeout, {502, false, "URX,UPE", 3}},
    {Fault::kGarbage, Policy::kOutlierEjection, {502, false, "UPE", 1}, kEjected},
    {Fault::kSlow, Policy::kNoRetries, {200, false, "-", 1}},
    {Fault::kSlow, Policy::kDefaultRetries, {200, false, "-", 1}},
    {Fault::kSlow, Policy::kPerTryTimeout, {504, false, "UT,URX", 3}},  // 500 ms answers, 200 ms tries
    {Fault::kSlow, Policy::kOutlierEjection, {200, false, "-", 1}, Expect{200, false, "-", 1}},
    // A short body promised and never sent: held whole before anything goes out, so the client
    // gets 503 UC (the upstream closed before its answer was whole), never a truncated 200.
    {Fault::kCloseAfterHeaders, Policy::kNoRetries, {503, false, "UC", 1}},
    {Fault::kCloseAfterHeaders, Policy::kDefaultRetries, {503, false, "UC", 1}},
    {Fault::kCloseAfterHeaders, Policy::kPerTryTimeout, {503, false, "UC,URX", 3}},
    {Fault::kCloseAfterHeaders, Policy::kOutlierEjection, {503, false, "UC", 1}, kEjected},
    // The one retry slot held by a blocker: a failure that would be retried stands.
    {Fault::kResetBeforeAnswer, Policy::kBudgetExhausted, {503, false, "UC,UO", 1}},
    {Fault::kResetMidBody, Policy::kBudgetExhausted, {200, true, "UPE", 1}},  // nothing to retry: the answer began
    {Fault::kNeverAnswers, Policy::kBudgetExhausted, {504, false, "UT,UO", 1}},
    {Fault::kGarbage, Policy::kBudgetExhausted, {502, false, "UO,UPE", 1}},
    {Fault::kSlow, Policy::kBudgetExhausted, {504, false, "UT,UO", 1}},
    {Fault::kCloseAfterHeaders, Policy::kBudgetExhausted, {503, false, "UC,UO", 1}},
    // The one request slot held by a blocker: refused at once, the upstream never asked.
    {Fault::kResetBeforeAnswer, Policy::kCircuitOpen, {503, false, "UO", 0}},
    {Fault::kResetMidBody, Policy::kCircuitOpen, {503, false, "UO", 0}},
    {Fault::kNeverAnswers, Policy::kCircuitOpen, {503, false, "UO", 0}},
    {Fault::kGarbage, Policy::kCircuitOpen, {503, false, "UO", 0}},
    {Fault::kSlow, Policy::kCircuitOpen, {503, false, "UO", 0}},
    {Fault::kCloseAfterHeaders, Policy::kCircuitOpen, {503, false, "UO", 0}},
};

// Outbound toward HTTP/2 upstreams for HTTP/1.1 clients upgraded by h2UpgradePolicy (GET, as
// the HTTP/1.1 rows: the same answers are due). An HTTP/2 stream the server refused with GOAWAY
// (not processed) is a refused stream: retried by Istio's default policy, whatever the method.
const Row kOutboundH2[] = {
    {Fault::kRefuses, Policy::kNoRetries, {503, false, "UF", 1}},
    {Fault::kRefuses, Policy::kDefaultRetries, {503, false, "UF,URX", 3}},
    {Fault::kRefuses, Policy::kPerTryTimeout, {503, false, "UF,URX", 3}},
    {Fault::kRefuses, Policy::kOutlierEjection, {503, false, "UF", 1}, kEjected},
    {Fault::kUnreachable, Policy::kNoRetries, {503, false, "UF", 1}},
    {Fault::kUnreachable, Policy::kDefaultRetries, {503, false, "UF,URX", 3}},
    {Fault::kUnreachable, Policy::kPerTryTimeout, {503, false, "UF,URX", 3}},
    {Fault::kUnreachable, Policy::kOutlierEjection, {503, false, "UF", 1}, kEjected},
    {Fault::kResetBeforeAnswer, Policy::kNoRetries, {503, false, "UC", 1}},
    {Fault::kResetBeforeAnswer, Policy::kDefaultRetries, {503, false, "UC", 1}},
    {Fault::kResetBeforeAnswer, Policy::kPerTryTimeout, {503, false, "UC,URX", 3}},
    {Fault::kResetBeforeAnswer, Policy::kOutlierEjection, {503, false, "UC", 1}, kEjected},
    {Fault::kResetBeforeAnswer, Policy::kBudgetExhausted, {503, false, "UC,UO", 1}},
    {Fault::kResetBeforeAnswer, Policy::kCircuitOpen, {503, false, "UO", 0}},
    {Fault::kResetMidBody, Policy::kNoRetries, {200, true, "UPE", 1}},
    {Fault::kResetMidBody, Policy::kDefaultRetries, {200, true, "UPE", 1}},
    {Fault::kResetMidBody, Policy::kPerTryTimeout, {200, true, "UPE", 1}},
    {Fault::kResetMidBody, Policy::kOutlierEjection, {200, true, "UPE", 1}, Expect{200, true, "UPE", 1}},
    {Fault::kResetMidBody, Policy::kBudgetExhausted, {200, true, "UPE", 1}},
    {Fault::kResetMidBody, Policy::kCircuitOpen, {503, false, "UO", 0}},
    {Fault::kNeverAnswers, Policy::kNoRetries, {504, false, "UT", 1}},
    {Fault::kNeverAnswers, Policy::kDefaultRetries, {504, false, "UT", 1}},
    {Fault::kNeverAnswers, Policy::kPerTryTimeout, {504, false, "UT,URX", 3}},
    {Fault::kNeverAnswers, Policy::kOutlierEjection, {504, false, "UT", 1}, kEjected},
    {Fault::kNeverAnswers, Policy::kBudgetExhausted, {504, false, "UT,UO", 1}},
    {Fault::kNeverAnswers, Policy::kCircuitOpen, {503, false, "UO", 0}},
    {Fault::kGarbage, Policy::kNoRetries, {502, false, "UPE", 1}},
    {Fault::kGarbage, Policy::kDefaultRetries, {502, false, "UPE", 1}},
    {Fault::kGarbage, Policy::kPerTryTimeout, {502, false, "URX,UPE", 3}},
    {Fault::kGarbage, Policy::kOutlierEjection, {502, false, "UPE", 1}, kEjected},
    {Fault::kGarbage, Policy::kBudgetExhausted, {502, false, "UO,UPE", 1}},
    {Fault::kGarbage, Policy::kCircuitOpen, {503, false, "UO", 0}},
    {Fault::kSlow, Policy::kNoRetries, {200, false, "-", 1}},
    {Fault::kSlow, Policy::kDefaultRetries, {200, false, "-", 1}},
    {Fault::kSlow, Policy::kPerTryTimeout, {504, false, "UT,URX", 3}},
    {Fault::kSlow, Policy::kOutlierEjection, {200, false, "-", 1}, Expect{200, false, "-", 1}},
    {Fault::kSlow, Policy::kBudgetExhausted, {504, false, "UT,UO", 1}},
    {Fault::kSlow, Policy::kCircuitOpen, {503, false, "UO", 0}},
    {Fault::kCloseAfterHeaders, Policy::kNoRetries, {503, false, "UC", 1}},
    {Fault::kCloseAfterHeaders, Policy::kDefaultRetries, {503, false, "UC", 1}},
    {Fault::kCloseAfterHeaders, Policy::kPerTryTimeout, {503, false, "UC,URX", 3}},
    {Fault::kCloseAfterHeaders, Policy::kOutlierEjection, {503, false, "UC", 1}, kEjected},
    {Fault::kCloseAfterHeaders, Policy::kBudgetExhausted, {503, false, "UC,UO", 1}},
    {Fault::kCloseAfterHeaders, Policy::kCircuitOpen, {503, false, "UO", 0}},
    {Fault::kGoawayMidBody, Policy::kNoRetries, {200, true, "UPE", 1}},
    {Fault::kGoawayMidBody, Policy::kDefaultRetries, {200, true, "UPE", 1}},
    {Fault::kGoawayMidBody, Policy::kPerTryTimeout, {200, true, "UPE", 1}},
    {Fault::kGoawayMidBody, Policy::kOutlierEjection, {200, true, "UPE", 1}, Expect{200, true, "UPE", 1}},
    {Fault::kGoawayMidBody, Policy::kBudgetExhausted, {200, true, "UPE", 1}},
    {Fault::kGoawayMidBody, Policy::kCircuitOpen, {503, false, "UO", 0}},
    {Fault::kGoawayBeforeAnswer, Policy::kNoRetries, {503, false, "UC", 1}},
    {Fault::kGoawayBeforeAnswer, Policy::kDefaultRetries, {503, false, "UC,URX", 3}},
    {Fault::kGoawayBeforeAnswer, Policy::kPerTryTimeout, {503, false, "UC,URX", 3}},
    {Fault::kGoawayBeforeAnswer, Policy::kOutlierEjection, {503, false, "UC", 1}, kEjected},
    {Fault::kGoawayBeforeAnswer, Policy::kBudgetExhausted, {503, false, "UC,UO", 1}},
    {Fault::kGoawayBeforeAnswer, Policy::kCircuitOpen, {503, false, "UO", 0}},
};

// Outbound gRPC calls (POST): a failure after the upstream may have seen the call (reset,
// timeout, garbage) is not retried (retry_policy.h: a POST is never sent twice); a connect
// failure or a refused stream is, whatever the method. A gRPC client judges 502, 503 and 504
// alike (UNAVAILABLE), 200 by its grpc-status.
const Row kOutboundGrpc[] = {
    {Fault::kRefuses, Policy::kNoRetries, {503, false, "UF", 1}},
    {Fault::kRefuses, Policy::kDefaultRetries, {503, false, "UF,URX", 3}},
    {Fault::kRefuses, Policy::kPerTryTimeout, {503, false, "UF,URX", 3}},
    {Fault::kRefuses, Policy::kOutlierEjection, {503, false, "UF", 1}, kEjected},
    {Fault::kUnreachable, Policy::kNoRetries, {503, false, "UF", 1}},
    {Fault::kUnreachable, Policy::kDefaultRetries, {503, false, "UF,URX", 3}},
    {Fault::kUnreachable, Policy::kPerTryTimeout, {503, false, "UF,URX", 3}},
    {Fault::kUnreachable, Policy::kOutlierEjection, {503, false, "UF", 1}, kEjected},
    {Fault::kResetBeforeAnswer, Policy::kNoRetries, {503, false, "UC", 1}},
    {Fault::kResetBeforeAnswer, Policy::kDefaultRetries, {503, false, "UC", 1}},
    {Fault::kResetBeforeAnswer, Policy::kPerTryTimeout, {503, false, "UC", 1}},
    {Fault::kResetBeforeAnswer, Policy::kOutlierEjection, {503, false, "UC", 1}, kEjected},
    {Fault::kResetBeforeAnswer, Policy::kBudgetExhausted, {503, false, "UC", 1}},
    {Fault::kResetBeforeAnswer, Policy::kCircuitOpen, {503, false, "UO", 0}},
    {Fault::kResetMidBody, Policy::kNoRetries, {200, true, "UPE", 1}},
    {Fault::kResetMidBody, Policy::kDefaultRetries, {200, true, "UPE", 1}},
    {Fault::kResetMidBody, Policy::kPerTryTimeout, {200, true, "UPE", 1}},
    {Fault::kResetMidBody, Policy::kOutlierEjection, {200, true, "UPE", 1}, Expect{200, true, "UPE", 1}},
    {Fault::kResetMidBody, Policy::kBudgetExhausted, {200, true, "UPE", 1}},
    {Fault::kResetMidBody, Policy::kCircuitOpen, {503, false, "UO", 0}},
    {Fault::kNeverAnswers, Policy::kNoRetries, {504, false, "UT", 1}},
    {Fault::kNeverAnswers, Policy::kDefaultRetries, {504, false, "UT", 1}},
    {Fault::kNeverAnswers, Policy::kPerTryTimeout, {504, false, "UT", 1}},
    {Fault::kNeverAnswers, Policy::kOutlierEjection, {504, false, "UT", 1}, kEjected},
    {Fault::kNeverAnswers, Policy::kBudgetExhausted, {504, false, "UT", 1}},
    {Fault::kNeverAnswers, Policy::kCircuitOpen, {503, false, "UO", 0}},
    {Fault::kGarbage, Policy::kNoRetries, {502, false, "UPE", 1}},
    {Fault::kGarbage, Policy::kDefaultRetries, {502, false, "UPE", 1}},
    {Fault::kGarbage, Policy::kPerTryTimeout, {502, false, "UPE", 1}},
    {Fault::kGarbage, Policy::kOutlierEjection, {502, false, "UPE", 1}, kEjected},
    {Fault::kGarbage, Policy::kBudgetExhausted, {502, false, "UPE", 1}},
    {Fault::kGarbage, Policy::kCircuitOpen, {503, false, "UO", 0}},
    {Fault::kSlow, Policy::kNoRetries, {200, false, "-", 1}},
    {Fault::kSlow, Policy::kDefaultRetries, {200, false, "-", 1}},
    {Fault::kSlow, Policy::kPerTryTimeout, {504, false, "UT", 1}},
    {Fault::kSlow, Policy::kOutlierEjection, {200, false, "-", 1}, Expect{200, false, "-", 1}},
    {Fault::kSlow, Policy::kBudgetExhausted, {504, false, "UT", 1}},
    {Fault::kSlow, Policy::kCircuitOpen, {503, false, "UO", 0}},
    // A gRPC answer has no content-length: its head goes out as it comes (the call may stream),
    // so a FIN after it is a call cut after its start, and the 200 counted a success.
    {Fault::kCloseAfterHeaders, Policy::kNoRetries, {200, true, "UPE", 1}},
    {Fault::kCloseAfterHeaders, Policy::kDefaultRetries, {200, true, "UPE", 1}},
    {Fault::kCloseAfterHeaders, Policy::kPerTryTimeout, {200, true, "UPE", 1}},
    {Fault::kCloseAfterHeaders, Policy::kOutlierEjection, {200, true, "UPE", 1}, Expect{200, true, "UPE", 1}},
    {Fault::kCloseAfterHeaders, Policy::kBudgetExhausted, {200, true, "UPE", 1}},
    {Fault::kCloseAfterHeaders, Policy::kCircuitOpen, {503, false, "UO", 0}},
    {Fault::kGoawayMidBody, Policy::kNoRetries, {200, true, "UPE", 1}},
    {Fault::kGoawayMidBody, Policy::kDefaultRetries, {200, true, "UPE", 1}},
    {Fault::kGoawayMidBody, Policy::kPerTryTimeout, {200, true, "UPE", 1}},
    {Fault::kGoawayMidBody, Policy::kOutlierEjection, {200, true, "UPE", 1}, Expect{200, true, "UPE", 1}},
    {Fault::kGoawayMidBody, Policy::kBudgetExhausted, {200, true, "UPE", 1}},
    {Fault::kGoawayMidBody, Policy::kCircuitOpen, {503, false, "UO", 0}},
    {Fault::kGoawayBeforeAnswer, Policy::kNoRetries, {503, false, "UC", 1}},
    {Fault::kGoawayBeforeAnswer, Policy::kDefaultRetries, {503, false, "UC,URX", 3}},
    {Fault::kGoawayBeforeAnswer, Policy::kPerTryTimeout, {503, false, "UC,URX", 3}},
    {Fault::kGoawayBeforeAnswer, Policy::kOutlierEjection, {503, false, "UC", 1}, kEjected},
    {Fault::kGoawayBeforeAnswer, Policy::kBudgetExhausted, {503, false, "UC,UO", 1}},
    {Fault::kGoawayBeforeAnswer, Policy::kCircuitOpen, {503, false, "UO", 0}},
};

// Inbound (policy: none; Istio has no inbound retries) for both client protocols.
const Row kInbound[] = {
    {Fault::kRefuses, Policy::kNoRetries, {503, false, "UF", 1}},
    {Fault::kResetBeforeAnswer, Policy::kNoRetries, {503, false, "UC", 1}},
    {Fault::kResetMidBody, Policy::kNoRetries, {200, true, "UPE", 1}},
    {Fault::kNeverAnswers, Policy::kNoRetries, {0, true, "", 1}},  // no inbound timeout: the client gives up
    {Fault::kGarbage, Policy::kNoRetries, {502, false, "UPE", 1}},
    {Fault::kSlow, Policy::kNoRetries, {200, false, "-", 1}},
    {Fault::kCloseAfterHeaders, Policy::kNoRetries, {503, false, "UC", 1}},
};

// Inbound to an app serving HTTP/2 (a port declared grpc), for gRPC clients.
const Row kInboundH2[] = {
    {Fault::kRefuses, Policy::kNoRetries, {503, false, "UF", 1}},
    {Fault::kResetBeforeAnswer, Policy::kNoRetries, {503, false, "UC", 1}},
    {Fault::kResetMidBody, Policy::kNoRetries, {200, true, "UPE", 1}},
    {Fault::kNeverAnswers, Policy::kNoRetries, {0, true, "", 1}},
    {Fault::kGarbage, Policy::kNoRetries, {502, false, "UPE", 1}},
    {Fault::kSlow, Policy::kNoRetries, {200, false, "-", 1}},
    {Fault::kCloseAfterHeaders, Policy::kNoRetries, {200, true, "UPE", 1}},  // no content-length: relayed as it came
    {Fault::kGoawayMidBody, Policy::kNoRetries, {200, true, "UPE", 1}},
    {Fault::kGoawayBeforeAnswer, Policy::kNoRetries, {503, false, "UC", 1}},
};

// Opaque TCP (a port declared tcp), outbound: no retries or ejection apply. A row says whether
// the client got the upstream's bytes, whether it saw the stream end (an upstream that closes
// or resets, or a connection that failed: never one left hanging; one that answers and keeps
// its connection open does not end it), and the connection's access-log flags (refused: UF;
// unreachable: UF,URX after the cluster's connectTimeout).
struct TcpRow {
  Fault fault;
  bool answered;  // the upstream's bytes reached the client
  bool ends;      // the client saw the end of the stream
  const char* flags;
};
const TcpRow kTcp[] = {
    {Fault::kRefuses, false, true, "UF"},
    {Fault::kUnreachable, false, true, "UF,URX"},
    {Fault::kResetBeforeAnswer, false, true, "-"},
    {Fault::kResetMidBody, true, true, "-"},
    {Fault::kGarbage, true, true, "-"},
    {Fault::kSlow, true, false, "-"},
    {Fault::kCloseAfterHeaders, true, true, "-"},
};
std::string TcpIp(Fault f) { return "10.96.50." + std::to_string(static_cast<int>(f) + 1); }

std::string ServiceName(Policy p, Fault f, Client c) { return std::string(Name(f)) + "-" + Name(p) + "-" + Name(c); }
std::string ClusterIp(Policy p, Fault f, Client c) {
  return "10.96." + std::to_string(10 * static_cast<int>(c) + static_cast<int>(p) + 1) + "." + std::to_string(static_cast<int>(f) + 1);
}

std::string MatrixSnapshot() {
  std::string services, endpoints, resources;
  auto service = [&](const std::string& name, const std::string& ip, const std::string& ports) {
    services += "- hostname: " + name + ".my-app.svc.cluster.local\n  clusterIPs: [" + ip + "]\n  ports: [" + ports + "]\n";
  };
  for (Client c : kClients) {
    // gRPC clients call a port declared grpc; the others a port declared http.
    const std::string port_name = Grpc(c) ? "grpc" : "http";
    for (Policy p : kPolicies) {
      for (Fault f : kFaults) {
        if (!Applies(p, f) || (Http2Only(f) && !Http2Upstream(c))) continue;
        std::string name = ServiceName(p, f, c);
        service(name, ClusterIp(p, f, c), "{name: " + port_name + ", port: 8080}");
        // h2UpgradePolicy upgrades only toward endpoints with a sidecar (Istio's rule).
        std::string labels = c == Client::kHttp1Upgraded ? ", labels: {security.istio.io/tlsMode: istio}" : "";
        endpoints += "- {service: " + name + ".my-app.svc.cluster.local, address: 10.200.0.2, ports: {" + port_name + ": " +
                     std::to_string(Port(f, Http2Upstream(c))) + "}" + labels + "}\n";
        // The budget and circuit rows' blockers are told apart by a header.
        std::string blocker_route = p == Policy::kBudgetExhausted
                                        ? "    - match: [{headers: {x-blocker: {exact: \"1\"}}}]\n      timeout: 5s\n"
                                          "      retries: {attempts: 3, retryOn: \"5xx,unavailable\"}\n      route:\n      - destination: {host: " + name + "}\n"
                                        : "";
        resources += "- apiVersion: networking.istio.io/v1\n  kind: VirtualService\n"
                     "  metadata: {name: " + name + ", namespace: my-app}\n"
                     "  spec:\n    hosts: [" + name + "]\n    http:\n" + blocker_route + "    - timeout: 2s\n" + RetriesOf(p) +
                     "      route:\n      - destination: {host: " + name + "}\n"
                     "- apiVersion: networking.istio.io/v1\n  kind: DestinationRule\n"
                     "  metadata: {name: " + name + ", namespace: my-app}\n"
                     "  spec:\n    host: " + name + "\n    trafficPolicy: " + TrafficPolicyOf(p, c) + "\n";
      }
    }
  }
  for (const TcpRow& row : kTcp) {
    std::string name = std::string("tcp-") + Name(row.fault);
    service(name, TcpIp(row.fault), "{name: tcp, port: 8080}");
    endpoints += "- {service: " + name + ".my-app.svc.cluster.local, address: 10.200.0.2, ports: {tcp: " +
                 std::to_string(Port(row.fault)) + "}}\n";
    resources += "- apiVersion: networking.istio.io/v1\n  kind: DestinationRule\n"
                 "  metadata: {name: " + name + ", namespace: my-app}\n"
                 "  spec: {host: " + name + ", trafficPolicy: {connectionPool: {tcp: {connectTimeout: 200ms}}}}\n";
  }
  service("healthy", "10.96.99.1", "{name: http, port: 8080}");
  endpoints += "- {service: healthy.my-app.svc.cluster.local, address: 10.200.0.2, ports: {http: " + std::to_string(kHealthyPort) + "}}\n";
  // The pod's own app ports: declared http (HTTP/2 clients are bridged to them) on the HTTP/1.1
  // fault servers, grpc on the HTTP/2 ones.
  std::string own_ports, own_endpoint_ports;
  for (Fault f : kFaults) {
    for (bool h2 : {false, true}) {
      if (Http2Only(f) && !h2) continue;
      std::string port = std::to_string(Port(f, h2)), name = std::string(h2 ? "grpc-" : "http-") + port;
      own_ports += std::string(own_ports.empty() ? "" : ", ") + "{name: " + name + ", port: " + port + "}";
      own_endpoint_ports += std::string(own_endpoint_ports.empty() ? "" : ", ") + name + ": " + port;
    }
  }
  service("web", "10.96.98.1", own_ports);
  endpoints += "- {service: web.my-app.svc.cluster.local, address: 10.200.0.1, ports: {" + own_endpoint_ports + "}}\n";
  return "apiVersion: tern.dev/v1alpha1\nkind: ProxySnapshot\nversion: matrix\n"
         "mesh: {outboundTrafficPolicy: ALLOW_ANY}\n"
         "workload: {name: web-1, namespace: my-app, labels: {app: web}}\n"
         "services:\n" + services + "endpoints:\n" + endpoints + "resources:\n" + resources;
}

// The fault's scripted server behaviour. A blocker (path "...-block") is served slowly, so it
// holds its cluster's request slot; a retry blocker ("...-block-retry") fails its first try and
// is served slowly on its retry, so it holds the cluster's retry slot.
// Every request line a fault server read, to count one row's attempts by its path (a blocker's
// tries, on the same server, may end or be retried at any moment: they are not the row's).
class RequestLines {
 public:
  void Add(const std::string& line) {
    std::lock_guard<std::mutex> lock(mu_);
    lines_.push_back(line);
  }
  int Count(const std::string& path) const {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int>(std::count_if(lines_.begin(), lines_.end(),
                                          [&](const std::string& l) { return l.find(" " + path + " ") != std::string::npos; }));
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> lines_;
};

Script ScriptFor(Fault f, std::shared_ptr<RequestLines> lines) {
  auto tried = std::make_shared<std::pair<std::mutex, std::set<std::string>>>();
  return [f, tried, lines](int, const std::string& request_line) {
    lines->Add(request_line);
    if (request_line.find("-block-retry ") != std::string::npos) {
      std::lock_guard<std::mutex> lock(tried->first);
      if (tried->second.insert(request_line).second) return Reply{.status = 503};
      return Reply{.delay = std::chrono::milliseconds(1500)};
    }
    if (request_line.find("-block ") != std::string::npos) return Reply{.delay = std::chrono::milliseconds(1500)};
    switch (f) {
      case Fault::kResetBeforeAnswer: return Reply{.reset = true};
      case Fault::kResetMidBody: return Reply{.break_mid_body = true};
      case Fault::kNeverAnswers: return Reply{.delay = std::chrono::milliseconds(60000)};  // ends with the backend
      case Fault::kGarbage: return Reply{.garbage = true};
      case Fault::kSlow: return Reply{.delay = std::chrono::milliseconds(500)};
      case Fault::kCloseAfterHeaders: return Reply{.close_after_headers = true};
      case Fault::kGoawayMidBody: return Reply{.goaway_mid_body = true};
      case Fault::kGoawayBeforeAnswer: return Reply{.goaway_before_answer = true};
      default: return Reply{};
    }
  };
}

// Both kinds of fault server behind one face: the HTTP/1.1 Backend or the H2FaultBackend.
struct FaultServer {
  std::unique_ptr<Backend> h1;
  std::unique_ptr<H2FaultBackend> h2;
  std::shared_ptr<RequestLines> lines = std::make_shared<RequestLines>();
  bool ok() const { return h1 ? h1->ok() : h2->ok(); }
  int requests(const std::string& path) const { return lines->Count(path); }
  void Stop() { h1 ? h1->Stop() : h2->Stop(); }
};
using FaultServers = std::map<std::pair<Fault, bool>, FaultServer>;  // by (fault, HTTP/2)

// SYNs to the refused and unreachable ports, counted (and for the unreachable one, dropped) by
// nftables in `ns`: how many connection attempts the proxy made.
class SynCounter {
 public:
  explicit SynCounter(const nettest::Netns& ns) : ns_(ns.name()) {
    std::string rules = "table inet tern_matrix {\n chain input {\n  type filter hook input priority -10; policy accept;\n";
    for (bool h2 : {false, true}) {
      rules += "  tcp dport " + std::to_string(Port(Fault::kRefuses, h2)) + " tcp flags & (syn | ack) == syn counter\n"
               "  tcp dport " + std::to_string(Port(Fault::kUnreachable, h2)) + " tcp flags & (syn | ack) == syn counter drop\n";
    }
    rules += " }\n}\n";
    ok_ = nettest::Sh("printf '" + rules + "' | ip netns exec " + ns_ + " nft -f -");
  }
  bool ok() const { return ok_; }
  int Count(Fault f, bool h2) const {
    std::string out = nettest::RunShell("ip netns exec " + ns_ + " nft list chain inet tern_matrix input");
    std::string what = "dport " + std::to_string(Port(f, h2)) + " ";
    size_t at = out.find(what);
    if (at == std::string::npos) return -1;
    at = out.find("packets ", at);
    return at == std::string::npos ? -1 : std::atoi(out.c_str() + at + 8);
  }

 private:
  std::string ns_;
  bool ok_ = false;
};

class FaultMatrix : public ProxyInPod {
 protected:

  // An HTTP/1.1 request from the app (outbound) or the peer (inbound); reads for at most 3 s.
  Seen Http1(const nettest::Netns& from, uid_t uid, const Endpoint& to, const std::string& host, const std::string& path) {
    Seen seen;
    int fd = nettest::ConnectSocket(from, to, uid);
    if (fd < 0) return seen;
    nettest::SendAll(fd, "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n");
    seen.raw = ReceiveUntil(fd, 3000ms, nullptr, &FaultMatrix::Whole);
    close(fd);
    seen.status = seen.raw.rfind("HTTP/1.1 ", 0) == 0 ? std::atoi(seen.raw.c_str() + 9) : 0;
    seen.cut = !Whole(seen.raw);
    return seen;
  }
  // Whether `raw` holds a whole answer framed by Content-Length.
  static bool Whole(const std::string& raw) {
    size_t end = raw.find("\r\n\r\n");
    if (end == std::string::npos) return false;
    std::string head = AsciiLower(raw.substr(0, end));
    size_t cl = head.find("content-length: ");
    if (cl == std::string::npos) return false;
    return raw.size() - end - 4 >= std::stoul(head.substr(cl + 16));
  }
  // An HTTP/2 request (prior knowledge) with nghttp; it gives up after 3 s.
  Seen Http2(const nettest::Netns& from, int uid, const std::string& url) {
    std::vector<std::string> argv = {"/usr/bin/env", "ip", "netns", "exec", from.name()};
    if (uid) argv.insert(argv.end(), {"setpriv", "--reuid", std::to_string(uid), "--regid", std::to_string(uid), "--clear-groups"});
    argv.insert(argv.end(), {"nghttp", "-v", "--timeout=3000ms", url});
    auto run = tern::testing_support::RunProcess(argv, {{"PATH", "/usr/sbin:/usr/bin:/sbin:/bin"}}, "", 10000ms);
    Seen seen;
    seen.raw = run.out + run.err;
    if (size_t at = run.out.find(":status: "); at != std::string::npos) seen.status = std::atoi(run.out.c_str() + at + 9);
    // Whole: a HEADERS or DATA frame received with END_STREAM (nghttp -v notes the flag on the
    // frame's next line), and no reset.
    bool ended = false;
    for (size_t at = run.out.find("recv "); at != std::string::npos; at = run.out.find("recv ", at + 1)) {
      size_t eol = run.out.find('\n', at);
      bool frame = run.out.compare(at, 18, "recv HEADERS frame") == 0 || run.out.compare(at, 15, "recv DATA frame") == 0;
      size_t next_eol = eol == std::string::npos ? eol : run.out.find('\n', eol + 1);
      if (frame && eol != std::string::npos && run.out.substr(eol, next_eol - eol).find("END_STREAM") != std::string::npos) ended = true;
    }
    seen.cut = run.exit_code != 0 || run.out.find("recv RST_STREAM") != std::string::npos || !ended;
    return seen;
  }
  // A gRPC call over a connection of its own (unary: one message, then the end of the request;
  // streaming: one message and the request held open until the answer ends or 3 s pass).
  Seen GrpcCall(const nettest::Netns& from, uid_t uid, const Endpoint& to, const std::string& authority, const std::string& path,
                bool streaming, const RawH2Client::Fields& extra = {}) {
    Seen seen;
    int fd = nettest::ConnectSocket(from, to, uid);
    if (fd < 0) return seen;
    RawH2Client c(fd);
    const std::string message = "hello";
    std::string frame = std::string{'\0', '\0', '\0', '\0', static_cast<char>(message.size())} + message;
    RawH2Client::Fields fields = {{":method", "POST"}, {":scheme", "http"}, {":authority", authority}, {":path", path},
                                  {"content-type", "application/grpc"}, {"te", "trailers"}};
    fields.insert(fields.end(), extra.begin(), extra.end());
    int32_t id = c.Request(fields, frame, streaming);
    c.Pump([&] { return c.Closed(id) || (streaming && c.status.count(id)); }, 3000ms);
    if (streaming) {
      c.EndBody(id);
      c.Pump([&] { return c.Closed(id); }, 3000ms);
    }
    seen.raw = c.fields[id] + c.body[id].substr(0, 200);
    seen.status = c.status.count(id) ? std::atoi(c.status[id].c_str()) : 0;
    if (size_t at = c.fields[id].find("grpc-status: "); at != std::string::npos) seen.grpc = std::atoi(c.fields[id].c_str() + at + 13);
    seen.cut = !c.ended.count(id) || c.reset.count(id);
    return seen;
  }

  // The access log's response flags for the request to `path`; "" when it logged none.
  std::string FlagsOf(const std::string& path) {
    std::string key = "\"path\":\"" + path + "\"", log;
    WaitFor([&] { return (log = Log()).find(key) != std::string::npos; });
    size_t at = log.find(key);
    if (at == std::string::npos) return "";
    at = log.find("\"response_flags\":\"", at);
    if (at == std::string::npos) return "";
    at += 18;
    return log.substr(at, log.find('"', at) - at);
  }
  // The proxy's log lines that name `path` (a failed row's story).
  std::string LinesFor(const std::string& path) {
    std::string log = Log(), out;
    for (size_t at = log.find(path); at != std::string::npos; at = log.find(path, at + 1)) {
      size_t begin = log.rfind('\n', at), end = log.find('\n', at);
      out += log.substr(begin == std::string::npos ? 0 : begin + 1, end == std::string::npos ? std::string::npos : end - begin) + "\n";
    }
    return out;
  }
  bool ProbeServed() {
    Seen s = Http1(net_->pod, 1000, {"10.96.99.1", 8080}, "healthy", "/probe");
    return s.status == 200 && !s.cut;
  }

  // One opaque TCP row: an HTTP-looking request goes as bytes, whatever comes back is read to
  // the end of the stream (at most 2 s, then the client closes).
  void CheckTcp(const TcpRow& row) {
    std::string cell = std::string("outbound tcp ") + Name(row.fault);
    int fd = nettest::ConnectSocket(net_->pod, {TcpIp(row.fault), 8080}, 1000);
    ASSERT_GE(fd, 0) << cell;
    nettest::SendAll(fd, "GET /tcp HTTP/1.1\r\nHost: tcp\r\n\r\n");
    bool ended = false;
    std::string got = ReceiveUntil(fd, 2000ms, &ended);
    close(fd);
    EXPECT_EQ(ended, row.ends) << cell << ": whether the client saw the end of the stream";
    EXPECT_EQ(!got.empty(), row.answered) << cell << "\n" << got.substr(0, 200);
    std::string key = "\"original_dst\":\"" + TcpIp(row.fault) + ":8080\"", log;
    ASSERT_TRUE(WaitFor([&] { return (log = Log()).find(key) != std::string::npos; })) << cell;
    size_t line = log.rfind('\n', log.find(key));
    size_t at = log.find("\"response_flags\":\"", line == std::string::npos ? 0 : line);
    ASSERT_NE(at, std::string::npos) << cell;
    at += 18;
    EXPECT_EQ(log.substr(at, log.find('"', at) - at), row.flags) << cell;
    EXPECT_TRUE(ProbeServed()) << cell << " left the proxy unable to serve";
  }

  // A request from the app that holds its cluster's one request slot (circuit rows) or, failing
  // its first try, its one retry slot (budget rows) while the row's request runs; it is taken
  // once the fault server has seen it (for budget rows, its retry too).
  std::thread StartBlocker(const Row& row, Client c, const FaultServer& server, const std::string& path) {
    const bool retry = row.policy == Policy::kBudgetExhausted;
    const std::string blocker_path = path + (retry ? "-block-retry" : "-block");
    std::thread blocker([this, row, c, blocker_path, retry] {
      if (Grpc(c)) {  // a call on its own connection (retried by its grpc-status, UNAVAILABLE)
        RawH2Client::Fields extra;
        if (retry) extra.emplace_back("x-blocker", "1");
        GrpcCall(net_->pod, 1000, {ClusterIp(row.policy, row.fault, c), 8080}, ServiceName(row.policy, row.fault, c),
                 blocker_path, false, extra);
        return;
      }
      int fd = nettest::ConnectSocket(net_->pod, {ClusterIp(row.policy, row.fault, c), 8080}, 1000);
      if (fd < 0) return;
      nettest::SendAll(fd, "GET " + blocker_path + " HTTP/1.1\r\nHost: " +
                               ServiceName(row.policy, row.fault, c) + "\r\n" + (retry ? "x-blocker: 1\r\n" : "") + "\r\n");
      ReceiveUntil(fd, 4000ms, nullptr, &FaultMatrix::Whole);
      close(fd);
    });
    WaitFor([&] { return server.requests(blocker_path) >= (retry ? 2 : 1); });
    return blocker;
  }

  // Runs one row for one client, outbound (a cluster IP) or inbound (the pod's own address).
  void Check(const Row& row, Client c, bool outbound, FaultServers& servers, SynCounter& syns, int index) {
    const bool h2 = Http2Upstream(c);
    auto one = [&](const Expect& want, const char* step) {
      std::string cell = std::string(outbound ? "outbound" : "inbound") + " " + Name(c) + " " + Name(row.fault) + " " +
                         Name(row.policy) + " " + step;
      // A path the fault server turns into a large body (/big) where the fault breaks mid-body.
      bool big = row.fault == Fault::kResetMidBody || row.fault == Fault::kGoawayMidBody;
      std::string path = "/row" + std::to_string(index) + "-" + Name(c) + "-" + step + (big ? "/big" : "");
      // The row's own requests at its server, or where nothing accepts, the SYNs it took.
      auto attempts_so_far = [&] { return Accepts(row.fault) ? servers.at({row.fault, h2}).requests(path) : syns.Count(row.fault, h2); };
      std::thread blocker;
      if (row.policy == Policy::kBudgetExhausted || row.policy == Policy::kCircuitOpen) {
        blocker = StartBlocker(row, c, servers.at({row.fault, h2}), path);
      }
      int before = attempts_so_far();
      Seen seen;
      std::string ip = outbound ? ClusterIp(row.policy, row.fault, c) : "10.200.0.1";
      uint16_t port = outbound ? uint16_t{8080} : Port(row.fault, h2);
      const nettest::Netns& from = outbound ? net_->pod : net_->peer;
      uid_t uid = outbound ? 1000 : 0;
      std::string authority = outbound ? ServiceName(row.policy, row.fault, c) : "web";
      switch (c) {
        case Client::kHttp1:
        case Client::kHttp1Upgraded: seen = Http1(from, uid, {ip, port}, authority, path); break;
        case Client::kHttp2: seen = Http2(from, static_cast<int>(uid), "http://" + ip + ":" + std::to_string(port) + path); break;
        case Client::kGrpcUnary:
        case Client::kGrpcStreaming: seen = GrpcCall(from, uid, {ip, port}, authority, path, c == Client::kGrpcStreaming); break;
      }
      std::string flags = want.flags[0] ? FlagsOf(path) : "";
      // The server may count the request a moment after the proxy answered.
      WaitFor([&] { return attempts_so_far() - before >= want.attempts; });
      int attempts = attempts_so_far() - before;
      if (std::getenv("TERN_MATRIX_PRINT")) {
        std::cout << "SEEN " << cell << " status " << seen.status << " grpc " << seen.grpc << " cut " << seen.cut << " flags " << flags
                  << " attempts " << attempts << "\n";
      }
      if (Grpc(c) && !want.cut && want.status) {
        // A gRPC library's view: HTTP 200 and the grpc-status, the upstream's (0 here) or, for
        // the proxy's own answers (502, 503, 504), UNAVAILABLE in trailers-only form as Envoy's.
        EXPECT_EQ(seen.grpc, want.status == 200 ? 0 : 14) << cell << "\n" << seen.raw.substr(0, 600) << "\nproxy log:\n" << LinesFor(path);
        EXPECT_EQ(seen.status, 200) << cell << "\n" << seen.raw.substr(0, 600);
      } else if (want.cut && c != Client::kHttp1 && c != Client::kHttp1Upgraded && seen.status == 0) {
        // An HTTP/2 client's stream cut right after its head was submitted: nghttp2 sends the
        // RST_STREAM first and drops the head, so the client sees the reset alone. Cut either way.
        EXPECT_TRUE(seen.cut) << cell;
      } else {
        EXPECT_EQ(seen.status, want.status) << cell << "\n" << seen.raw.substr(0, 600) << "\nproxy log:\n" << LinesFor(path);
      }
      EXPECT_EQ(seen.cut, want.cut) << cell << "\n" << seen.raw.substr(0, 600);
      if (want.flags[0]) {
        EXPECT_EQ(flags, want.flags) << cell;
      }
      EXPECT_EQ(attempts, want.attempts) << cell;
      if (blocker.joinable()) blocker.join();
      EXPECT_TRUE(ProbeServed()) << cell << " left the proxy unable to serve\n" << Log().substr(0, 2000);
    };
    one(row.first, "first");
    if (row.then) one(*row.then, "then");
  }

  // Runs every row for `clients` (and, with `tcp`, the opaque TCP rows) against one proxy.
  void Run(std::initializer_list<Client> clients, bool tcp) {
    LOAD_SNAPSHOT(MatrixSnapshot(), "matrix");
    FaultServers outside, inside;  // the upstreams on the peer; the app in the pod
    for (Fault f : kFaults) {
      if (!Accepts(f)) continue;
      for (bool h2 : {false, true}) {
        if (Http2Only(f) && !h2) continue;
        for (auto* servers : {&outside, &inside}) {
          const nettest::Netns& ns = servers == &outside ? net_->peer : net_->pod;
          Endpoint at{servers == &outside ? "10.200.0.2" : "0.0.0.0", Port(f, h2)};
          FaultServer& server = (*servers)[{f, h2}];
          if (h2) server.h2 = std::make_unique<H2FaultBackend>(ns, at, Name(f), ScriptFor(f, server.lines));
          else server.h1 = std::make_unique<Backend>(ns, at, Name(f), ScriptFor(f, server.lines));
          ASSERT_TRUE(server.ok()) << Name(f);
        }
      }
    }
    Backend healthy(net_->peer, {"10.200.0.2", kHealthyPort}, "healthy");
    SynCounter peer_syns(net_->peer), pod_syns(net_->pod);
    ASSERT_TRUE(peer_syns.ok() && pod_syns.ok());
    ASSERT_TRUE(ProbeServed()) << Log();

    // TERN_MATRIX_ROWS=substring runs only the rows whose name holds it ("h2 refuses"), to debug one.
    const char* only = std::getenv("TERN_MATRIX_ROWS");
    auto wanted = [&](const Row& row, Client c, bool outbound) {
      std::string name = std::string(outbound ? "outbound " : "inbound ") + Name(c) + " " + Name(row.fault) + " " + Name(row.policy);
      return !only || name.find(only) != std::string::npos;
    };
    int index = 0;
    for (Client c : clients) {
      std::vector<Row> outbound_rows = Grpc(c)                       ? std::vector<Row>(std::begin(kOutboundGrpc), std::end(kOutboundGrpc))
                                       : c == Client::kHttp1Upgraded ? std::vector<Row>(std::begin(kOutboundH2), std::end(kOutboundH2))
                                                                     : std::vector<Row>(std::begin(kOutbound), std::end(kOutbound));
      for (const Row& row : outbound_rows) {
        if (wanted(row, c, true)) Check(row, c, /*outbound=*/true, outside, peer_syns, index);
        ++index;
      }
      // Inbound: HTTP/1.1 and HTTP/2 clients to the app's HTTP/1.1 ports, gRPC clients to its
      // HTTP/2 ones (h2UpgradePolicy is an outbound setting: inbound, that client is plain HTTP/1.1).
      if (c == Client::kHttp1Upgraded) continue;
      std::vector<Row> inbound_rows = Grpc(c) ? std::vector<Row>(std::begin(kInboundH2), std::end(kInboundH2))
                                              : std::vector<Row>(std::begin(kInbound), std::end(kInbound));
      for (const Row& row : inbound_rows) {
        if (wanted(row, c, false)) Check(row, c, /*outbound=*/false, inside, pod_syns, index);
        ++index;
      }
    }
    for (const TcpRow& row : kTcp) {
      if (tcp && (!only || (std::string("outbound tcp ") + Name(row.fault)).find(only) != std::string::npos)) CheckTcp(row);
    }
    EXPECT_EQ(Count(Log(), "invariant broken"), 0);
    for (auto* servers : {&outside, &inside}) {
      for (auto& [key, server] : *servers) server.Stop();
    }
    healthy.Stop();
  }
};


TEST_F(FaultMatrix, EveryPairingOfClientDirectionFaultAndPolicy) {
  Run({Client::kHttp1, Client::kHttp2}, /*tcp=*/true);
}

// HTTP/2 upstreams: HTTP/1.1 clients upgraded by h2UpgradePolicy, gRPC unary and streaming.
// Its first run found this path wrong in six pairings, each fixed: a reset or close that came
// with the upstream's last bytes left streams waiting out their timeouts (the read waited for an
// edge that never came); garbage was a reset (UC), not a protocol error (UPE); a short answer
// whose body never came reached upgraded clients as a truncated 200; a stream refused by GOAWAY
// was not retried as a refused stream; the perTryTimeout of a stream ran during its connect, so
// an unreachable endpoint was a timeout (not retried for gRPC) instead of a connect failure.
TEST_F(FaultMatrix, Http2UpstreamPairings) {
  Run({Client::kHttp1Upgraded, Client::kGrpcUnary, Client::kGrpcStreaming}, /*tcp=*/false);
}

}  // namespace
}  // namespace tern::proxy::testing_support
