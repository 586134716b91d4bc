// The fault matrix: client protocol × direction × upstream fault × retry/ejection policy, each
// pairing one row of the tables below, all run against one tern-proxy in a pod behind
// tern-init's capture (under the ci preset: ASan and UBSan). A row says what the client must
// get (a status, or an answer visibly cut off: never a whole-looking 2xx), the access log's
// response flags and how many attempts reached the upstream; after every row a probe client
// must still be served. Bugs live in the pairings no test crossed: the HTTP/2 client, a refused
// endpoint and the default retries crashed the proxy while each alone was tested.
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

#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/base/ascii.h"
#include "core/capture/testing/sh.h"
#include "proxy/testing/proxy_in_pod.h"

namespace tern::proxy::testing_support {
namespace {

enum class Client { kHttp1, kHttp2 };
enum class Fault { kRefuses, kUnreachable, kResetBeforeAnswer, kResetMidBody, kNeverAnswers, kGarbage, kSlow, kCloseAfterHeaders };
enum class Policy { kNoRetries, kDefaultRetries, kPerTryTimeout, kOutlierEjection };

constexpr Client kClients[] = {Client::kHttp1, Client::kHttp2};
constexpr Fault kFaults[] = {Fault::kRefuses,      Fault::kUnreachable, Fault::kResetBeforeAnswer, Fault::kResetMidBody,
                             Fault::kNeverAnswers, Fault::kGarbage,     Fault::kSlow,              Fault::kCloseAfterHeaders};
constexpr Policy kPolicies[] = {Policy::kNoRetries, Policy::kDefaultRetries, Policy::kPerTryTimeout, Policy::kOutlierEjection};

const char* Name(Client c) { return c == Client::kHttp1 ? "h1" : "h2"; }
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
  }
  return "?";
}
const char* Name(Policy p) {
  switch (p) {
    case Policy::kNoRetries: return "no-retries";
    case Policy::kDefaultRetries: return "default-retries";
    case Policy::kPerTryTimeout: return "per-try-timeout";
    case Policy::kOutlierEjection: return "outlier";
  }
  return "?";
}

uint16_t Port(Fault f) { return static_cast<uint16_t>(9000 + static_cast<int>(f)); }
constexpr uint16_t kHealthyPort = 9100;

// The route every outbound row uses: a 2 s timeout (so "never answers" ends; three tries of an
// unreachable endpoint end well within it, even on a loaded machine), and the policy's retries;
// connections time out after 200 ms (so "unreachable" ends).
std::string RetriesOf(Policy p) {
  switch (p) {
    case Policy::kNoRetries:
    case Policy::kOutlierEjection: return "      retries: {attempts: 0}\n";
    case Policy::kDefaultRetries: return "";  // Istio's default: 2 retries on connect-failure, refused-stream, unavailable, ...
    case Policy::kPerTryTimeout: return "      retries: {attempts: 2, perTryTimeout: 200ms, retryOn: \"5xx,reset,connect-failure\"}\n";
  }
  return "";
}

// What a client saw.
struct Seen {
  int status = 0;    // 0: no answer at all
  bool cut = false;  // the answer (or the connection) ended before it was whole
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
    {Fault::kRefuses, Policy::kDefaultRetries, {503, false, "URX,UF", 3}},
    {Fault::kRefuses, Policy::kPerTryTimeout, {503, false, "URX,UF", 3}},
    {Fault::kRefuses, Policy::kOutlierEjection, {503, false, "UF", 1}, kEjected},
    {Fault::kUnreachable, Policy::kNoRetries, {503, false, "UF", 1}},
    {Fault::kUnreachable, Policy::kDefaultRetries, {503, false, "URX,UF", 3}},
    {Fault::kUnreachable, Policy::kPerTryTimeout, {503, false, "URX,UF", 3}},
    {Fault::kUnreachable, Policy::kOutlierEjection, {503, false, "UF", 1}, kEjected},
    {Fault::kResetBeforeAnswer, Policy::kNoRetries, {503, false, "UC", 1}},
    {Fault::kResetBeforeAnswer, Policy::kDefaultRetries, {503, false, "UC", 1}},
    {Fault::kResetBeforeAnswer, Policy::kPerTryTimeout, {503, false, "URX,UC", 3}},
    {Fault::kResetBeforeAnswer, Policy::kOutlierEjection, {503, false, "UC", 1}, kEjected},
    // The answer's head went out: the client sees it cut, and the 200 counted as a success.
    {Fault::kResetMidBody, Policy::kNoRetries, {200, true, "UPE", 1}},
    {Fault::kResetMidBody, Policy::kDefaultRetries, {200, true, "UPE", 1}},
    {Fault::kResetMidBody, Policy::kPerTryTimeout, {200, true, "UPE", 1}},
    {Fault::kResetMidBody, Policy::kOutlierEjection, {200, true, "UPE", 1}, Expect{200, true, "UPE", 1}},
    {Fault::kNeverAnswers, Policy::kNoRetries, {504, false, "UT", 1}},
    {Fault::kNeverAnswers, Policy::kDefaultRetries, {504, false, "UT", 1}},
    {Fault::kNeverAnswers, Policy::kPerTryTimeout, {504, false, "URX,UT", 3}},
    {Fault::kNeverAnswers, Policy::kOutlierEjection, {504, false, "UT", 1}, kEjected},
    {Fault::kGarbage, Policy::kNoRetries, {502, false, "UPE", 1}},
    {Fault::kGarbage, Policy::kDefaultRetries, {502, false, "UPE", 1}},
    {Fault::kGarbage, Policy::kPerTryTimeout, {502, false, "URX,UPE", 3}},
    {Fault::kGarbage, Policy::kOutlierEjection, {502, false, "UPE", 1}, kEjected},
    {Fault::kSlow, Policy::kNoRetries, {200, false, "-", 1}},
    {Fault::kSlow, Policy::kDefaultRetries, {200, false, "-", 1}},
    {Fault::kSlow, Policy::kPerTryTimeout, {504, false, "URX,UT", 3}},  // 500 ms answers, 200 ms tries
    {Fault::kSlow, Policy::kOutlierEjection, {200, false, "-", 1}, Expect{200, false, "-", 1}},
    // A short body promised and never sent: held whole before anything goes out, so the client
    // gets 503 UC (the upstream closed before its answer was whole), never a truncated 200.
    {Fault::kCloseAfterHeaders, Policy::kNoRetries, {503, false, "UC", 1}},
    {Fault::kCloseAfterHeaders, Policy::kDefaultRetries, {503, false, "UC", 1}},
    {Fault::kCloseAfterHeaders, Policy::kPerTryTimeout, {503, false, "URX,UC", 3}},
    {Fault::kCloseAfterHeaders, Policy::kOutlierEjection, {503, false, "UC", 1}, kEjected},
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
    for (Policy p : kPolicies) {
      for (Fault f : kFaults) {
        std::string name = ServiceName(p, f, c);
        service(name, ClusterIp(p, f, c), "{name: http, port: 8080}");
        endpoints += "- {service: " + name + ".my-app.svc.cluster.local, address: 10.200.0.2, ports: {http: " +
                     std::to_string(Port(f)) + "}}\n";
        std::string outlier = p == Policy::kOutlierEjection
                                  ? ", outlierDetection: {consecutive5xxErrors: 1, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 100}"
                                  : "";
        resources += "- apiVersion: networking.istio.io/v1\n  kind: VirtualService\n"
                     "  metadata: {name: " + name + ", namespace: my-app}\n"
                     "  spec:\n    hosts: [" + name + "]\n    http:\n    - timeout: 2s\n" + RetriesOf(p) +
                     "      route:\n      - destination: {host: " + name + "}\n"
                     "- apiVersion: networking.istio.io/v1\n  kind: DestinationRule\n"
                     "  metadata: {name: " + name + ", namespace: my-app}\n"
                     "  spec:\n    host: " + name + "\n"
                     "    trafficPolicy: {connectionPool: {tcp: {connectTimeout: 200ms}}" + outlier + "}\n";
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
  // The pod's own app ports, declared HTTP/1.1 (so HTTP/2 clients are bridged to it).
  std::string own_ports, own_endpoint_ports;
  for (Fault f : kFaults) {
    std::string port = std::to_string(Port(f));
    own_ports += std::string(own_ports.empty() ? "" : ", ") + "{name: http-" + port + ", port: " + port + "}";
    own_endpoint_ports += std::string(own_endpoint_ports.empty() ? "" : ", ") + "http-" + port + ": " + port;
  }
  service("web", "10.96.98.1", own_ports);
  endpoints += "- {service: web.my-app.svc.cluster.local, address: 10.200.0.1, ports: {" + own_endpoint_ports + "}}\n";
  return "apiVersion: tern.dev/v1alpha1\nkind: ProxySnapshot\nversion: matrix\n"
         "mesh: {outboundTrafficPolicy: ALLOW_ANY}\n"
         "workload: {name: web-1, namespace: my-app, labels: {app: web}}\n"
         "services:\n" + services + "endpoints:\n" + endpoints + "resources:\n" + resources;
}

// The fault's scripted server behaviour.
Reply ReplyFor(Fault f) {
  switch (f) {
    case Fault::kResetBeforeAnswer: return Reply{.reset = true};
    case Fault::kResetMidBody: return Reply{.break_mid_body = true};
    case Fault::kNeverAnswers: return Reply{.delay = std::chrono::milliseconds(60000)};  // ends with the backend
    case Fault::kGarbage: return Reply{.garbage = true};
    case Fault::kSlow: return Reply{.delay = std::chrono::milliseconds(500)};
    case Fault::kCloseAfterHeaders: return Reply{.close_after_headers = true};
    default: return Reply{};
  }
}
bool Accepts(Fault f) { return f != Fault::kRefuses && f != Fault::kUnreachable; }

// SYNs to the refused and unreachable ports, counted (and for the unreachable one, dropped) by
// nftables in `ns`: how many connection attempts the proxy made.
class SynCounter {
 public:
  explicit SynCounter(const nettest::Netns& ns) : ns_(ns.name()) {
    std::string rules = "table inet tern_matrix {\n chain input {\n  type filter hook input priority -10; policy accept;\n"
                        "  tcp dport " + std::to_string(Port(Fault::kRefuses)) + " tcp flags & (syn | ack) == syn counter\n"
                        "  tcp dport " + std::to_string(Port(Fault::kUnreachable)) + " tcp flags & (syn | ack) == syn counter drop\n"
                        " }\n}\n";
    ok_ = nettest::Sh("printf '" + rules + "' | ip netns exec " + ns_ + " nft -f -");
  }
  bool ok() const { return ok_; }
  int Count(Fault f) const {
    std::string out = nettest::RunShell("ip netns exec " + ns_ + " nft list chain inet tern_matrix input");
    std::string what = "dport " + std::to_string(Port(f)) + " ";
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

  // Runs one row for one client; `out` direction when `to_ip` is a cluster IP, else inbound.
  void Check(const Row& row, Client c, bool outbound, std::map<Fault, std::unique_ptr<Backend>>& servers, SynCounter& syns,
             int index) {
    auto attempts_so_far = [&] { return Accepts(row.fault) ? servers.at(row.fault)->requests() : syns.Count(row.fault); };
    auto one = [&](const Expect& want, const char* step) {
      std::string cell = std::string(outbound ? "outbound" : "inbound") + " " + Name(c) + " " + Name(row.fault) + " " +
                         Name(row.policy) + " " + step;
      // A path the fault server turns into a large body (/big) where the fault breaks mid-body.
      std::string path = "/row" + std::to_string(index) + "-" + Name(c) + "-" + step + (row.fault == Fault::kResetMidBody ? "/big" : "");
      int before = attempts_so_far();
      Seen seen;
      std::string ip = outbound ? ClusterIp(row.policy, row.fault, c) : "10.200.0.1";
      uint16_t port = outbound ? uint16_t{8080} : Port(row.fault);
      const nettest::Netns& from = outbound ? net_->pod : net_->peer;
      uid_t uid = outbound ? 1000 : 0;
      if (c == Client::kHttp1) seen = Http1(from, uid, {ip, port}, outbound ? ServiceName(row.policy, row.fault, c) : "web", path);
      else seen = Http2(from, static_cast<int>(uid), "http://" + ip + ":" + std::to_string(port) + path);
      EXPECT_EQ(seen.status, want.status) << cell << "\n" << seen.raw.substr(0, 600) << "\nproxy log:\n" << LinesFor(path);
      EXPECT_EQ(seen.cut, want.cut) << cell << "\n" << seen.raw.substr(0, 600);
      if (want.flags[0]) {
        EXPECT_EQ(FlagsOf(path), want.flags) << cell;
      }
      // The server may count the request a moment after the proxy answered.
      WaitFor([&] { return attempts_so_far() - before >= want.attempts; });
      EXPECT_EQ(attempts_so_far() - before, want.attempts) << cell;
      EXPECT_TRUE(ProbeServed()) << cell << " left the proxy unable to serve\n" << Log().substr(0, 2000);
    };
    one(row.first, "first");
    if (row.then) one(*row.then, "then");
  }
};

TEST_F(FaultMatrix, EveryPairingOfClientDirectionFaultAndPolicy) {
  LOAD_SNAPSHOT(MatrixSnapshot(), "matrix");
  std::map<Fault, std::unique_ptr<Backend>> outside, inside;  // the upstreams on the peer; the app in the pod
  for (Fault f : kFaults) {
    if (!Accepts(f)) continue;
    Script script = [f](int, const std::string&) { return ReplyFor(f); };
    outside[f] = std::make_unique<Backend>(net_->peer, Endpoint{"10.200.0.2", Port(f)}, Name(f), script);
    inside[f] = std::make_unique<Backend>(net_->pod, Endpoint{"0.0.0.0", Port(f)}, Name(f), script);
    ASSERT_TRUE(outside[f]->ok() && inside[f]->ok()) << Name(f);
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
  for (Client c : kClients) {
    for (const Row& row : kOutbound) {
      if (wanted(row, c, true)) Check(row, c, /*outbound=*/true, outside, peer_syns, index);
      ++index;
    }
    for (const Row& row : kInbound) {
      if (wanted(row, c, false)) Check(row, c, /*outbound=*/false, inside, pod_syns, index);
      ++index;
    }
  }
  for (const TcpRow& row : kTcp) {
    if (!only || (std::string("outbound tcp ") + Name(row.fault)).find(only) != std::string::npos) CheckTcp(row);
  }
  EXPECT_EQ(Count(Log(), "invariant broken"), 0);
  for (auto* servers : {&outside, &inside}) {
    for (auto& [fault, server] : *servers) server->Stop();
  }
  healthy.Stop();
}

}  // namespace
}  // namespace tern::proxy::testing_support
