// The fault matrix's dimensions and rows (see fault_matrix_test.cc, which runs them): client
// protocol, upstream fault and policy, what each pairing must give, and the snapshot that
// gives every (policy, fault, client) its own service.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace tern::proxy::testing_support::matrix {

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

inline constexpr Client kClients[] = {Client::kHttp1, Client::kHttp2, Client::kHttp1Upgraded, Client::kGrpcUnary, Client::kGrpcStreaming};
inline constexpr Fault kFaults[] = {Fault::kRefuses,      Fault::kUnreachable, Fault::kResetBeforeAnswer, Fault::kResetMidBody,
                                    Fault::kNeverAnswers, Fault::kGarbage,     Fault::kSlow,              Fault::kCloseAfterHeaders,
                                    Fault::kGoawayMidBody, Fault::kGoawayBeforeAnswer};
inline constexpr Policy kPolicies[] = {Policy::kNoRetries,       Policy::kDefaultRetries,  Policy::kPerTryTimeout,
                                       Policy::kOutlierEjection, Policy::kBudgetExhausted, Policy::kCircuitOpen};

inline bool Http2Upstream(Client c) { return c == Client::kHttp1Upgraded || c == Client::kGrpcUnary || c == Client::kGrpcStreaming; }
inline bool Grpc(Client c) { return c == Client::kGrpcUnary || c == Client::kGrpcStreaming; }
inline bool Http2Only(Fault f) { return f == Fault::kGoawayMidBody || f == Fault::kGoawayBeforeAnswer; }
inline bool Accepts(Fault f) { return f != Fault::kRefuses && f != Fault::kUnreachable; }

inline const char* Name(Client c) {
  switch (c) {
    case Client::kHttp1: return "h1";
    case Client::kHttp2: return "h2";
    case Client::kHttp1Upgraded: return "h1-upgraded";
    case Client::kGrpcUnary: return "grpc-unary";
    case Client::kGrpcStreaming: return "grpc-streaming";
  }
  return "?";
}
inline const char* Name(Fault f) {
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
inline const char* Name(Policy p) {
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
inline uint16_t Port(Fault f, bool h2 = false) { return static_cast<uint16_t>((h2 ? 9200 : 9000) + static_cast<int>(f)); }
inline constexpr uint16_t kHealthyPort = 9100;

// The route every outbound row uses: a 2 s timeout (so "never answers" ends; three tries of an
// unreachable endpoint end well within it, even on a loaded machine), and the policy's retries;
// connections time out after 200 ms (so "unreachable" ends).
inline std::string RetriesOf(Policy p) {
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
inline std::string TrafficPolicyOf(Policy p, Client c) {
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
inline bool Applies(Policy p, Fault f) { return Accepts(f) || (p != Policy::kBudgetExhausted && p != Policy::kCircuitOpen); }

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

inline constexpr Expect kEjected{503, false, "UH", 0};

// Outbound, for both client protocols (the HTTP/2 client reaches these HTTP/1.1 upstreams
// through the bridge). Istio's default retries cover connect failures, not resets or
// timeouts; perTryTimeout's policy retries 5xx (which covers resets, timeouts and garbage).
inline const Row kOutbound[] = {
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
inline const Row kOutboundH2[] = {
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
inline const Row kOutboundGrpc[] = {
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
inline const Row kInbound[] = {
    {Fault::kRefuses, Policy::kNoRetries, {503, false, "UF", 1}},
    {Fault::kResetBeforeAnswer, Policy::kNoRetries, {503, false, "UC", 1}},
    {Fault::kResetMidBody, Policy::kNoRetries, {200, true, "UPE", 1}},
    {Fault::kNeverAnswers, Policy::kNoRetries, {0, true, "", 1}},  // no inbound timeout: the client gives up
    {Fault::kGarbage, Policy::kNoRetries, {502, false, "UPE", 1}},
    {Fault::kSlow, Policy::kNoRetries, {200, false, "-", 1}},
    {Fault::kCloseAfterHeaders, Policy::kNoRetries, {503, false, "UC", 1}},
};

// Inbound to an app serving HTTP/2 (a port declared grpc), for gRPC clients.
inline const Row kInboundH2[] = {
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
inline const TcpRow kTcp[] = {
    {Fault::kRefuses, false, true, "UF"},
    {Fault::kUnreachable, false, true, "UF,URX"},
    {Fault::kResetBeforeAnswer, false, true, "-"},
    {Fault::kResetMidBody, true, true, "-"},
    {Fault::kGarbage, true, true, "-"},
    {Fault::kSlow, true, false, "-"},
    {Fault::kCloseAfterHeaders, true, true, "-"},
};
inline std::string TcpIp(Fault f) { return "10.96.50." + std::to_string(static_cast<int>(f) + 1); }

inline std::string ServiceName(Policy p, Fault f, Client c) { return std::string(Name(f)) + "-" + Name(p) + "-" + Name(c); }
inline std::string ClusterIp(Policy p, Fault f, Client c) {
  return "10.96." + std::to_string(10 * static_cast<int>(c) + static_cast<int>(p) + 1) + "." + std::to_string(static_cast<int>(f) + 1);
}

inline std::string MatrixSnapshot() {
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

}  // namespace tern::proxy::testing_support::matrix
