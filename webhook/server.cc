#include "webhook/server.h"

#include <httplib.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/base/files.h"
#include "core/meshconfig/mesh_config.h"
#include "core/metrics/registry.h"
#include "core/tls/serving_cert.h"
#include "webhook/admission.h"

namespace tern::webhook {

using nlohmann::json;

struct WebhookServer::Impl {
  ServerOptions options;
  const Logger& log;
  ServingCert cert;
  std::unique_ptr<httplib::SSLServer> http;
  int bound_port = 0;

  std::mutex mesh_mu;
  std::shared_ptr<const MeshConfig> mesh;
  FileStamp mesh_stamp;

  Registry metrics;
  Family<Counter>& injections;
  Family<Histogram>& latency;
  Family<Counter>& reloads;
  Histogram& request_latency;

  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool stopping = false;
  std::atomic<bool> run_called{false};
  std::thread watcher;

  Impl(const ServerOptions& o, const Logger& l)
      : options(o),
        log(l),
        cert(o.cert_file, o.key_file),
        injections(metrics.AddCounter("tern_webhook_injections_total",
                                      "AdmissionReviews answered, by outcome.", {"outcome"})),
        latency(metrics.AddHistogram("tern_webhook_request_duration_seconds",
                                     "Time to answer one AdmissionReview.", {},
                                     {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1})),
        reloads(metrics.AddCounter("tern_webhook_config_reloads_total",
                                   "Reloads of the serving certificate and the mesh config.", {"file", "result"})),
        request_latency(latency.With({})) {}

  std::shared_ptr<const MeshConfig> Mesh() {
    std::lock_guard<std::mutex> lock(mesh_mu);
    return mesh;
  }

  Status LoadMesh(bool initial) {
    if (options.mesh_config_file.empty()) {
      std::lock_guard<std::mutex> lock(mesh_mu);
      if (!mesh) mesh = std::make_shared<const MeshConfig>();
      return Status::Ok();
    }
    FileStamp stamp = StampOf(options.mesh_config_file);
    if (!initial && stamp == mesh_stamp) return Status::Ok();
    mesh_stamp = stamp;
    auto loaded = LoadMeshConfig(options.mesh_config_file);
    if (!loaded.ok()) {
      reloads.With({"mesh", "error"}).Inc();
      if (!initial) log.Warn("mesh config reload refused; keeping the last good config", {{"error", loaded.status().message()}});
      return loaded.status();
    }
    std::lock_guard<std::mutex> lock(mesh_mu);
    mesh = std::make_shared<const MeshConfig>(std::move(loaded).value());
    reloads.With({"mesh", "ok"}).Inc();
    if (!initial) log.Info("mesh config reloaded", {{"file", options.mesh_config_file}, {"revision", mesh->revision}});
    return Status::Ok();
  }

  void WatchFiles() {
    std::unique_lock<std::mutex> lock(stop_mu);
    while (!stop_cv.wait_for(lock, options.reload_interval, [this] { return stopping; })) {
      lock.unlock();
      Status s = cert.ReloadIfChanged();
      if (!s.ok()) {
        reloads.With({"certificate", "error"}).Inc();
        log.Warn("serving certificate reload refused; keeping the last good one", {{"error", s.message()}});
      }
      LoadMesh(false);
      lock.lock();
    }
  }

  void Serve(const httplib::Request& req, httplib::Response& res) {
    auto start = std::chrono::steady_clock::now();
    auto mesh_now = Mesh();
    std::string content_type = req.get_header_value("Content-Type");
    AdmissionAnswer answer;
    if (content_type.rfind("application/json", 0) != 0) {
      answer.http_status = 415;
      answer.outcome = "bad_request";
      answer.reason = "Content-Type must be application/json, got \"" + content_type + "\"";
      answer.body = json({{"error", answer.reason}}).dump();
    } else {
      answer = HandleAdmissionReview(req.body, *mesh_now);
    }
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    request_latency.Observe(seconds);
    // dryRun: answered identically but not counted as an injection, and logged as such.
    injections.With({answer.dry_run ? "dry_run" : answer.outcome}).Inc();
    LogLevel level = answer.http_status == 200 ? LogLevel::kInfo : LogLevel::kWarn;
    if (log.Enabled(level)) {
      json line = {{"uid", answer.uid},      {"namespace", answer.namespace_name}, {"pod", answer.pod_name},
                   {"outcome", answer.outcome}, {"reason", answer.reason},        {"dryRun", answer.dry_run},
                   {"latency_us", static_cast<int64_t>(seconds * 1e6)}};
      log.Log(level, "admission", line);
    }
    res.status = answer.http_status;
    res.set_content(answer.body, "application/json");
  }
};

WebhookServer::WebhookServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

WebhookServer::~WebhookServer() {
  Stop();
  if (impl_->watcher.joinable()) impl_->watcher.join();
}

Result<std::unique_ptr<WebhookServer>> WebhookServer::Create(const ServerOptions& options, const Logger& logger) {
  auto impl = std::make_unique<Impl>(options, logger);
  Status s = impl->cert.ReloadIfChanged();
  if (!s.ok()) return s.Context("loading the serving certificate");
  s = impl->LoadMesh(true);
  if (!s.ok()) return s.Context("loading the mesh config");

  Impl* self = impl.get();
  impl->http = std::make_unique<httplib::SSLServer>([self](SSL_CTX& ctx) {
    self->cert.Install(&ctx);
    return true;
  });
  if (!impl->http->is_valid()) return Status::Error("cannot create the TLS server context");
  auto& http = *impl->http;
  http.set_payload_max_length(options.max_body_bytes);
  http.set_keep_alive_max_count(100000);
  http.set_keep_alive_timeout(30);
  http.set_tcp_nodelay(true);  // without it Nagle and delayed ACKs add ~40 ms per answer
  http.set_read_timeout(10, 0);
  http.set_write_timeout(10, 0);
  int threads = options.threads;
  http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };

  http.Post("/inject", [self](const httplib::Request& req, httplib::Response& res) { self->Serve(req, res); });
  http.Get("/healthz", [](const httplib::Request&, httplib::Response& res) { res.set_content("ok\n", "text/plain"); });
  http.Get("/readyz", [self](const httplib::Request&, httplib::Response& res) {
    bool ready = self->cert.loaded() && self->Mesh() != nullptr;
    res.status = ready ? 200 : 503;
    res.set_content(ready ? "ready\n" : "not ready\n", "text/plain");
  });
  http.Get("/metrics", [self](const httplib::Request&, httplib::Response& res) {
    res.set_content(self->metrics.Expose(), "text/plain; version=0.0.4");
  });
  http.set_error_handler([self](const httplib::Request& req, httplib::Response& res) {
    // httplib calls this for every status >= 400; handlers' own answers already have a body.
    // What is left: 404s and the 413 httplib answers for a body over max_body_bytes.
    if (!res.body.empty()) return;
    std::string message = res.status == 413
                              ? "request body exceeds " + std::to_string(self->options.max_body_bytes) + " bytes"
                              : "no handler for " + req.method + " " + req.path;
    if (res.status == 413) self->injections.With({"bad_request"}).Inc();
    res.set_content(json({{"error", message}}).dump(), "application/json");
  });
  http.set_exception_handler([self](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    self->log.Error("handler failed", {{"error", what}});
    res.status = 500;
    res.set_content(json({{"error", "internal error: " + what}}).dump(), "application/json");
  });

  // httplib listens with a backlog of 5, too short for kube-apiserver opening a burst of
  // connections (SYNs past it are dropped and retried a second later). Remember the listening
  // socket so the backlog can be raised once httplib has called listen().
  auto listen_fd = std::make_shared<int>(-1);
  http.set_socket_options([listen_fd](socket_t sock) {
    int one = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    *listen_fd = sock;
  });
  if (options.port == 0) {
    impl->bound_port = http.bind_to_any_port(options.host);
  } else if (http.bind_to_port(options.host, options.port)) {
    impl->bound_port = options.port;
  }
  if (impl->bound_port <= 0) {
    return Status::Error("cannot listen on " + options.host + ":" + std::to_string(options.port));
  }
  if (*listen_fd >= 0) ::listen(*listen_fd, 1024);
  impl->watcher = std::thread([self] { self->WatchFiles(); });
  return std::unique_ptr<WebhookServer>(new WebhookServer(std::move(impl)));
}

int WebhookServer::port() const { return impl_->bound_port; }

void WebhookServer::Run() {
  impl_->run_called = true;
  {
    std::lock_guard<std::mutex> lock(impl_->stop_mu);
    if (impl_->stopping) return;
  }
  impl_->http->listen_after_bind();
}

void WebhookServer::Stop() {
  {
    std::lock_guard<std::mutex> lock(impl_->stop_mu);
    impl_->stopping = true;
  }
  impl_->stop_cv.notify_all();
  // httplib's stop() does nothing until the listen loop runs: if Run() has been called but is not
  // listening yet (a SIGTERM right at start-up), wait for it, bounded, so the stop is not lost.
  for (int i = 0; i < 400 && impl_->run_called && !impl_->http->is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  impl_->http->stop();
}

}  // namespace tern::webhook
