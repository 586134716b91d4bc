// ternd's one HTTPS listener (Asio + OpenSSL, HTTP/1.1 with keep-alive), built so that no client
// can delay another: kube-apiserver's admission calls share it with every sidecar's long-lived
// stream and with whatever else reaches the port.
//
// Every connection lives on its own strand of a small thread pool and is bounded in each phase
// by its own deadline (a watchdog closes the socket when it passes):
//   handshake  TLS must be done within handshake_timeout of the accept;
//   idle       between requests, the next request's first byte within idle_timeout;
//   request    from its first byte, the whole request (head and body) within request_timeout
//              (cut: 408);
//   write      an answer must be taken by the client within write_timeout.
// Heads are bounded (431), bodies by their decoded size whatever the framing (a Content-Length
// past the limit is answered 413 before any of the body is read; a chunked body the moment its
// chunks pass it). Past max_connections, a new connection takes the place of the connection idle
// the longest (one between requests, or one that never finished its handshake); when none is
// idle the new one is closed at once. The counters are in `Registry` as tern_server_*.
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/base/status.h"
#include "core/log/logger.h"
#include "core/metrics/registry.h"

namespace tern::control_plane {

struct HttpsServerOptions {
  std::string host = "0.0.0.0";
  int port = 0;  // 0 picks a free port
  int threads = 2;
  size_t max_header_bytes = 16 * 1024;
  size_t max_body_bytes = 4 << 20;
  size_t max_connections = 10000;
  std::chrono::milliseconds handshake_timeout{10000};
  std::chrono::milliseconds request_timeout{10000};
  std::chrono::milliseconds idle_timeout{60000};
  std::chrono::milliseconds write_timeout{10000};
  size_t max_stream_queue_bytes = 64 << 20;
  // A stream route's handler may wait on another service (a TokenReview asks the API server):
  // it runs on these threads, so that no connection worker waits with it.
  int blocking_threads = 4;
};

struct HttpRequest {
  std::string method;
  std::string target;  // as sent: path and query
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string peer;  // "ip:port" of the client

  std::string_view path() const { return std::string_view(target).substr(0, target.find('?')); }
  // The first field of that name (case-insensitive), "" when absent.
  std::string_view Header(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain";
  std::string body;
};

// A response that stays open (the config stream): its chunks go out as they are sent, chunked.
// Thread-safe. Memory is bounded: a client that does not take what is sent falls behind by at
// most max_stream_queue_bytes, then its stream is cut (it reconnects and starts over).
class ResponseStream {
 public:
  virtual ~ResponseStream() = default;
  // Queues `chunk`; false once the stream has ended (the client left, it was cut, or Close).
  virtual bool Send(std::string chunk) = 0;
  // Ends the response (its last chunk) once what is queued is written.
  virtual void Close() = 0;
  virtual bool open() const = 0;
};

class HttpsServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;
  // Returns 200 to open the stream (with that content type; a body is its first chunk), or
  // another status to answer the request plainly (the stream is then never opened).
  using StreamHandler = std::function<HttpResponse(const HttpRequest&, const std::shared_ptr<ResponseStream>&)>;

  // Binds the port. `configure_tls` gets the server's SSL_CTX once, before any handshake (to
  // install the serving certificate). `metrics` (may be null) receives the server's counters.
  static Result<std::unique_ptr<HttpsServer>> Create(const HttpsServerOptions& options,
                                                     std::function<void(SSL_CTX*)> configure_tls, Registry* metrics,
                                                     const Logger& log);
  ~HttpsServer();

  // Before Run: requests for `method` `path` (exact) go to `handler`, called on a worker thread
  // (handlers run concurrently). Other paths get 404, another method on a known path 405.
  void Route(std::string method, std::string path, Handler handler);
  // The same for a long-lived response (no deadline while it waits for chunks; never evicted).
  void RouteStream(std::string method, std::string path, StreamHandler handler);

  int port() const;
  // Serves on the worker threads until Stop(); call from one thread.
  void Run();
  // From any thread, also before Run (Run then returns at once).
  void Stop();

 private:
  struct Impl;
  explicit HttpsServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tern::control_plane
