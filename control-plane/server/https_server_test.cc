// ternd's listener against clients that stall, flood and break the rules: none of them may delay
// another client or make the server read more than its limits. Real TLS over loopback; the
// misbehaving clients are raw sockets and OpenSSL, so they can do what a library would not.
#include "control-plane/server/https_server.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <mutex>
#include <thread>

#include "core/base/files.h"
#include "core/tls/serving_cert.h"
#include "core/tls/x509.h"

namespace tern::control_plane {
namespace {

using namespace std::chrono_literals;

// A TCP connection to the server; optionally TLS on it. Reads are bounded by `wait`.
class Client {
 public:
  explicit Client(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    SetWait(5s);
  }
  ~Client() {
    if (ssl_) SSL_free(ssl_);
    if (ctx_) SSL_CTX_free(ctx_);
    close(fd_);
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connected() const { return connected_; }
  SSL* ssl() const { return ssl_; }
  void Close() {
    ::shutdown(fd_, SHUT_RDWR);
  }
  void SetWait(std::chrono::milliseconds wait) {
    timeval tv{.tv_sec = static_cast<time_t>(wait.count() / 1000), .tv_usec = static_cast<suseconds_t>(wait.count() % 1000 * 1000)};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }
  bool Handshake() {
    ctx_ = SSL_CTX_new(TLS_client_method());
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    return SSL_connect(ssl_) == 1;
  }
  bool Send(std::string_view bytes) {
    while (!bytes.empty()) {
      int n = SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size()));
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  bool Readable(std::chrono::milliseconds wait) {
    if (ssl_ && SSL_pending(ssl_) > 0) return true;
    pollfd p{.fd = fd_, .events = POLLIN, .revents = 0};
    return poll(&p, 1, static_cast<int>(wait.count())) == 1;
  }
  // One answer: its head and a Content-Length body; "" when the connection ended (or the wait
  // passed) before any byte of it.
  std::string ReadAnswer() {
    std::string in;
    char buf[16384];
    for (;;) {
      size_t head_end = in.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        size_t at = in.find("Content-Length: ");
        size_t length = at == std::string::npos ? 0 : std::stoul(in.substr(at + 16));
        if (in.size() >= head_end + 4 + length) return in;
      }
      int n = SSL_read(ssl_, buf, sizeof buf);
      if (n <= 0) return in;
      in.append(buf, static_cast<size_t>(n));
    }
  }
  // The server closed the connection within the wait (what came before, such as TLS 1.3 session
  // tickets, is dropped).
  bool ClosedByServer() {
    char buf[4096];
    for (int reads = 0; reads < 64; ++reads) {
      ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n == 0 || (n < 0 && errno == ECONNRESET)) return true;
      if (n < 0) return false;  // the wait passed
    }
    return false;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
};

template <class F>
bool WaitUntil(F done) {
  for (int i = 0; i < 200; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  return false;
}

int StatusOf(const std::string& answer) {
  if (answer.rfind("HTTP/1.1 ", 0) != 0 || answer.size() < 12) return 0;
  return std::stoi(answer.substr(9, 3));
}

class HttpsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    signal(SIGPIPE, SIG_IGN);  // the flooding client writes on after the server has closed
    char tmpl[] = "/tmp/tern-https-XXXXXX";
    dir_ = mkdtemp(tmpl);
    PemPair ca = *CreateSelfSigned({.common_name = "test CA", .is_ca = true});
    auto leaf = *IssueCertificate(ca, {.common_name = "ternd", .ip_addresses = {"127.0.0.1"}});
    ASSERT_TRUE(WriteFileAtomically(dir_ + "/tls.crt", leaf.cert_pem).ok());
    ASSERT_TRUE(WriteFileAtomically(dir_ + "/tls.key", leaf.key_pem).ok());
    cert_ = std::make_unique<ServingCert>(dir_ + "/tls.crt", dir_ + "/tls.key");
    ASSERT_TRUE(cert_->ReloadIfChanged().ok());
    options_.host = "127.0.0.1";
    options_.max_body_bytes = 256 * 1024;
  }
  void Start() {
    auto s = HttpsServer::Create(options_, [this](SSL_CTX* ctx) { cert_->Install(ctx); }, &metrics_, log_);
    ASSERT_TRUE(s.ok()) << s.status().message();
    server_ = std::move(s).value();
    server_->Route("POST", "/echo", [](const HttpRequest& r) {
      return HttpResponse{200, "text/plain", "got " + std::to_string(r.body.size()) + " bytes"};
    });
    server_->Route("GET", "/hello", [](const HttpRequest& r) {
      return HttpResponse{200, "text/plain", "hello " + std::string(r.Header("X-Name"))};
    });
    thread_ = std::thread([this] { server_->Run(); });
  }
  void TearDown() override {
    if (server_) {
      server_->Stop();
      thread_.join();
      server_.reset();
    }
    std::system(("rm -rf " + dir_).c_str());
  }
  // A well-behaved client's request, on a connection of its own.
  int Hello() {
    Client c(server_->port());
    if (!c.Handshake() || !c.Send("GET /hello HTTP/1.1\r\nHost: t\r\nX-Name: x\r\n\r\n")) return 0;
    return StatusOf(c.ReadAnswer());
  }
  uint64_t CounterValue(const std::string& series) {
    std::string text = metrics_.Expose();
    size_t at = text.find(series + " ");
    return at == std::string::npos ? 0 : std::stoull(text.substr(at + series.size() + 1));
  }

  Logger log_{2, LogLevel::kOff};
  Registry metrics_;
  std::string dir_;
  std::unique_ptr<ServingCert> cert_;
  HttpsServerOptions options_;
  std::unique_ptr<HttpsServer> server_;
  std::thread thread_;
};

TEST_F(HttpsServerTest, ServesKeepAliveRequestsAndAnswersUnknownPathsAndMethods) {
  Start();
  Client c(server_->port());
  ASSERT_TRUE(c.Handshake());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(c.Send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"));
    std::string a = c.ReadAnswer();
    EXPECT_EQ(StatusOf(a), 200) << a;
    EXPECT_NE(a.find("got 5 bytes"), std::string::npos) << a;
  }
  ASSERT_TRUE(c.Send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"));
  EXPECT_NE(c.ReadAnswer().find("got 5 bytes"), std::string::npos);
  ASSERT_TRUE(c.Send("GET /nope HTTP/1.1\r\nHost: t\r\n\r\n"));
  EXPECT_EQ(StatusOf(c.ReadAnswer()), 404);
  ASSERT_TRUE(c.Send("DELETE /echo HTTP/1.1\r\nHost: t\r\n\r\n"));
  std::string not_allowed = c.ReadAnswer();
  EXPECT_EQ(StatusOf(not_allowed), 405);
  EXPECT_NE(not_allowed.find("method DELETE is not allowed on /echo"), std::string::npos) << not_allowed;
  // A client that waits for 100 Continue hears it, then is answered.
  ASSERT_TRUE(c.Send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"));
  std::string interim = c.ReadAnswer();
  EXPECT_EQ(StatusOf(interim), 100) << interim;
  ASSERT_TRUE(c.Send("ok"));
  EXPECT_NE(c.ReadAnswer().find("got 2 bytes"), std::string::npos);
  // Connection: close is honoured: the answer, then the end.
  ASSERT_TRUE(c.Send("GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
  std::string last = c.ReadAnswer();
  EXPECT_NE(last.find("Connection: close"), std::string::npos) << last;
  EXPECT_TRUE(c.ClosedByServer());
}

// Clients that connect and never start TLS hold no worker: a client behind 200 of them is
// answered at once (before: cpp-httplib's 64-thread pool made it wait for their timeouts).
TEST_F(HttpsServerTest, ConnectionsThatNeverHandshakeDelayNoOne) {
  options_.handshake_timeout = 60s;  // far past the client's own wait: only a free server passes
  Start();
  std::vector<std::unique_ptr<Client>> stalled;
  for (int i = 0; i < 200; ++i) {
    stalled.push_back(std::make_unique<Client>(server_->port()));
    ASSERT_TRUE(stalled.back()->connected());
  }
  // And 65 that finished TLS, sent half a request head and stopped.
  std::vector<std::unique_ptr<Client>> half;
  for (int i = 0; i < 65; ++i) {
    half.push_back(std::make_unique<Client>(server_->port()));
    ASSERT_TRUE(half.back()->Handshake());
    ASSERT_TRUE(half.back()->Send("POST /echo HTTP/1.1\r\nHost: t\r\n"));
  }
  for (int i = 0; i < 5; ++i) EXPECT_EQ(Hello(), 200);
  // The same through cpp-httplib, the way the old server was tried.
  httplib::SSLClient lib("127.0.0.1", server_->port());
  lib.enable_server_certificate_verification(false);
  lib.set_connection_timeout(5, 0);
  lib.set_read_timeout(5, 0);
  auto res = lib.Get("/hello");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

TEST_F(HttpsServerTest, EachPhaseHasItsDeadline) {
  options_.handshake_timeout = 300ms;
  options_.request_timeout = 300ms;
  options_.idle_timeout = 300ms;
  Start();
  // No ClientHello: closed at the handshake deadline.
  Client silent(server_->port());
  EXPECT_TRUE(silent.ClosedByServer());
  // Half a request head: 408, then closed.
  Client slow(server_->port());
  ASSERT_TRUE(slow.Handshake());
  ASSERT_TRUE(slow.Send("POST /echo HTTP/1.1\r\nHost: t\r\n"));
  std::string cut = slow.ReadAnswer();
  EXPECT_EQ(StatusOf(cut), 408) << cut;
  EXPECT_NE(cut.find("request not received within 300 ms"), std::string::npos) << cut;
  // A whole head but a body that stops: the same.
  Client stalled_body(server_->port());
  ASSERT_TRUE(stalled_body.Handshake());
  ASSERT_TRUE(stalled_body.Send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc"));
  EXPECT_EQ(StatusOf(stalled_body.ReadAnswer()), 408);
  // Idle between requests: closed without a word (a 408 could cross the client's next request).
  Client idle(server_->port());
  ASSERT_TRUE(idle.Handshake());
  ASSERT_TRUE(idle.Send("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"));
  EXPECT_EQ(StatusOf(idle.ReadAnswer()), 200);
  EXPECT_EQ(idle.ReadAnswer(), "");
  EXPECT_EQ(CounterValue("tern_server_timeouts_total{phase=\"handshake\"}"), 1u);
  EXPECT_EQ(CounterValue("tern_server_timeouts_total{phase=\"request\"}"), 2u);
  EXPECT_EQ(CounterValue("tern_server_timeouts_total{phase=\"idle\"}"), 1u);
  EXPECT_EQ(Hello(), 200);
}

// Bodies are bounded by their decoded size, whatever the framing, and refused as soon as they
// pass it: a Content-Length past the limit before any body byte, a chunked body when its chunks
// pass it (before: a 100 MB chunked body was read whole, and a 10 MiB Content-Length with no body
// answered only after the read timeout).
TEST_F(HttpsServerTest, BodiesPastTheLimitAreRefusedAtOnceWhateverTheFraming) {
  options_.request_timeout = 60s;  // far past the client's wait: the refusal must not wait for it
  Start();
  {
    Client c(server_->port());
    ASSERT_TRUE(c.Handshake());
    ASSERT_TRUE(c.Send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10485760\r\n\r\n"));
    std::string a = c.ReadAnswer();
    EXPECT_EQ(StatusOf(a), 413) << a;
    EXPECT_NE(a.find("request body exceeds 262144 bytes"), std::string::npos) << a;
  }
  {
    Client c(server_->port());
    ASSERT_TRUE(c.Handshake());
    ASSERT_TRUE(c.Send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"));
    const std::string chunk = "4000\r\n" + std::string(0x4000, 'x') + "\r\n";
    size_t sent = 0;
    std::string answer;
    // Up to 100 MB, as the attack sent; the answer comes long before.
    while (sent < (100u << 20)) {
      if (!c.Send(chunk)) break;
      sent += 0x4000;
      if (c.Readable(0ms)) {  // TLS 1.3 session tickets make it readable too: only an answer counts
        c.SetWait(100ms);
        answer = c.ReadAnswer();
        c.SetWait(5s);
        if (!answer.empty()) break;
      }
    }
    if (answer.empty() && c.Readable(5s)) answer = c.ReadAnswer();
    EXPECT_EQ(StatusOf(answer), 413) << answer << " after " << sent << " bytes";
    // The server read at most its limit plus what its linger drops (4 MiB) and the socket
    // buffers held.
    EXPECT_LT(sent, 32u << 20);
  }
  {
    Client c(server_->port());
    ASSERT_TRUE(c.Handshake());
    ASSERT_TRUE(c.Send("POST /echo HTTP/1.1\r\nHost: t\r\nX: " + std::string(20000, 'a') + "\r\n\r\n"));
    EXPECT_EQ(StatusOf(c.ReadAnswer()), 431);
  }
  {
    Client c(server_->port());
    ASSERT_TRUE(c.Handshake());
    ASSERT_TRUE(c.Send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"));
    std::string a = c.ReadAnswer();
    EXPECT_EQ(StatusOf(a), 400) << a;
    EXPECT_NE(a.find("malformed request"), std::string::npos) << a;
  }
  EXPECT_EQ(CounterValue("tern_server_requests_refused_total{reason=\"body_too_large\"}"), 2u);
  EXPECT_EQ(Hello(), 200);
}

// Past the cap, a new connection takes the place of the one idle the longest; when every
// connection is mid-request, the new one is closed instead.
TEST_F(HttpsServerTest, TheConnectionCapEvictsTheLongestIdle) {
  options_.max_connections = 20;
  options_.handshake_timeout = 60s;
  options_.request_timeout = 60s;
  Start();
  std::vector<std::unique_ptr<Client>> idle;
  for (int i = 0; i < 20; ++i) {
    idle.push_back(std::make_unique<Client>(server_->port()));
    std::this_thread::sleep_for(2ms);  // distinct idle times: the first is the oldest
  }
  EXPECT_EQ(Hello(), 200);
  EXPECT_TRUE(idle[0]->ClosedByServer()) << "the oldest idle connection made room";
  idle[1]->SetWait(200ms);
  EXPECT_FALSE(idle[1]->ClosedByServer());
  EXPECT_GE(CounterValue("tern_server_connections_total{event=\"evicted\"}"), 1u);
  idle.clear();
  std::this_thread::sleep_for(300ms);  // the server notices they are gone

  std::vector<std::unique_ptr<Client>> busy;
  for (int attempt = 0; attempt < 200 && busy.size() < 20; ++attempt) {
    auto c = std::make_unique<Client>(server_->port());
    if (c->Handshake() && c->Send("POST /echo HTTP/1.1\r\nHost: t\r\n")) busy.push_back(std::move(c));
    std::this_thread::sleep_for(10ms);  // its head read: mid-request, so never evicted
  }
  ASSERT_EQ(busy.size(), 20u);
  Client late(server_->port());
  EXPECT_FALSE(late.Handshake()) << "every connection is mid-request: the new one is refused";
  EXPECT_GE(CounterValue("tern_server_connections_total{event=\"refused\"}"), 1u);
  busy.pop_back();  // one ends: room again
  bool served = false;
  for (int i = 0; i < 50 && !served; ++i) {
    served = Hello() == 200;
    if (!served) std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(served);
}

// A long-lived response: chunks go out as they are sent; the sender learns when the client
// left; a client that stops reading is cut once it is max_stream_queue_bytes behind, so memory
// stays bounded; a refusal is a plain answer.
TEST_F(HttpsServerTest, StreamsSendChunksAsTheyComeAndEndWithTheirClient) {
  options_.max_stream_queue_bytes = 1 << 20;
  Start();
  std::mutex mu;
  std::vector<std::shared_ptr<ResponseStream>> streams;
  server_->RouteStream("GET", "/watch", [&](const HttpRequest& r, const std::shared_ptr<ResponseStream>& s) {
    if (r.Header("X-Who").empty()) return HttpResponse{403, "text/plain", "who?\n"};
    std::lock_guard<std::mutex> lock(mu);
    streams.push_back(s);
    return HttpResponse{200, "application/x-ndjson", "first\n"};
  });
  auto stream_count = [&] {
    std::lock_guard<std::mutex> lock(mu);
    return streams.size();
  };
  {
    Client refused(server_->port());
    ASSERT_TRUE(refused.Handshake());
    ASSERT_TRUE(refused.Send("GET /watch HTTP/1.1\r\nHost: t\r\n\r\n"));
    EXPECT_EQ(StatusOf(refused.ReadAnswer()), 403);
  }
  Client c(server_->port());
  ASSERT_TRUE(c.Handshake());
  ASSERT_TRUE(c.Send("GET /watch HTTP/1.1\r\nHost: t\r\nX-Who: me\r\n\r\n"));
  std::string seen;
  auto read_until = [&](const std::string& want) {
    char buf[4096];
    for (int i = 0; i < 50 && seen.find(want) == std::string::npos; ++i) {
      if (!c.Readable(100ms)) continue;
      int n = SSL_read(c.ssl(), buf, sizeof buf);
      if (n <= 0) break;
      seen.append(buf, static_cast<size_t>(n));
    }
    return seen.find(want) != std::string::npos;
  };
  ASSERT_TRUE(read_until("first\n")) << seen;
  EXPECT_NE(seen.find("Transfer-Encoding: chunked"), std::string::npos) << seen;
  ASSERT_EQ(stream_count(), 1u);
  std::shared_ptr<ResponseStream> s = streams[0];
  EXPECT_TRUE(s->Send("second\n"));
  ASSERT_TRUE(read_until("7\r\nsecond\n\r\n")) << seen;
  // The stream holds no deadline: it is still open past the idle and request timeouts' scale.
  EXPECT_TRUE(s->open());
  // The client goes: the sender sees it.
  c.Close();
  EXPECT_TRUE(WaitUntil([&] { return !s->open(); }));
  EXPECT_FALSE(s->Send("late\n"));

  // A client that never reads: cut once 1 MiB is queued and unwritten (the socket buffers take
  // some first).
  Client slow(server_->port());
  ASSERT_TRUE(slow.Handshake());
  ASSERT_TRUE(slow.Send("GET /watch HTTP/1.1\r\nHost: t\r\nX-Who: slow\r\n\r\n"));
  ASSERT_TRUE(WaitUntil([&] { return stream_count() == 2; }));
  std::shared_ptr<ResponseStream> behind = streams[1];
  const std::string block(64 << 10, 'x');
  bool cut = false;
  for (int i = 0; i < 2000 && !cut; ++i) {
    cut = !behind->Send(block);
    if (i % 16 == 0) std::this_thread::sleep_for(1ms);
  }
  EXPECT_TRUE(cut) << "128 MB queued for a client that reads nothing";
  EXPECT_EQ(Hello(), 200);
}

TEST_F(HttpsServerTest, StopEndsRunWithConnectionsOpen) {
  Start();
  Client open(server_->port());
  ASSERT_TRUE(open.Handshake());
  ASSERT_TRUE(open.Send("POST /echo HTTP/1.1\r\nHost: t\r\n"));
  Client silent(server_->port());
  server_->Stop();
  thread_.join();
  server_.reset();
  EXPECT_TRUE(open.ClosedByServer());
}

}  // namespace
}  // namespace tern::control_plane
