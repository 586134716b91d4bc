#include "control-plane/server/ternd_server.h"

#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "control-plane/discovery/folder_source.h"
#include "control-plane/discovery/kube_source.h"
#include "core/kube/client.h"
#include "control-plane/push/config_push.h"
#include "core/base/files.h"
#include "core/meshconfig/mesh_config.h"
#include "core/metrics/registry.h"
#include "core/tls/serving_cert.h"
#include "webhook/admission.h"

namespace tern::control_plane {

using nlohmann::json;

struct TerndServer::Impl {
  TerndOptions options;
  const Logger& log;
  ServingCert cert;
  Registry metrics;
  std::unique_ptr<HttpsServer> https;
  std::unique_ptr<ConfigPush> push;
  std::unique_ptr<kube::Client> kube;  // the Kubernetes source's client (it outlives the source)
  std::unique_ptr<kube::Client> kube_reviews;  // the TokenReviews' (a shorter deadline: a proxy waits on it)
  std::unique_ptr<kube::TokenReviewer> reviewer;  // with the Kubernetes source: proxies prove their pod
  std::unique_ptr<DiscoverySource> source;

  std::mutex mesh_mu;
  std::shared_ptr<const MeshConfig> mesh;
  FileStamp mesh_stamp;

  Family<Counter>& injections;
  Family<Histogram>& latency;
  Family<Counter>& reloads;
  Histogram& request_latency;

  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool stopping = false;
  std::thread watcher;

  Impl(const TerndOptions& o, const Logger& l)
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
      (void)LoadMesh(false);  // a refused reload is logged and counted there; the last good config stays
      lock.lock();
    }
  }

  HttpResponse Inject(const HttpRequest& req) {
    auto start = std::chrono::steady_clock::now();
    auto mesh_now = Mesh();
    std::string_view content_type = req.Header("Content-Type");
    webhook::AdmissionAnswer answer;
    if (content_type.rfind("application/json", 0) != 0) {
      answer.http_status = 415;
      answer.outcome = "bad_request";
      answer.reason = "Content-Type must be application/json, got \"" + std::string(content_type) + "\"";
      answer.body = json({{"error", answer.reason}}).dump();
    } else {
      answer = webhook::HandleAdmissionReview(req.body, *mesh_now);
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
    return {answer.http_status, "application/json", std::move(answer.body)};
  }
};

TerndServer::TerndServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

TerndServer::~TerndServer() {
  Stop();
  if (impl_->watcher.joinable()) impl_->watcher.join();
}

Result<std::unique_ptr<TerndServer>> TerndServer::Create(const TerndOptions& options, const Logger& logger) {
  auto impl = std::make_unique<Impl>(options, logger);
  Status s = impl->cert.ReloadIfChanged();
  if (!s.ok()) return s.Context("loading the serving certificate");
  s = impl->LoadMesh(true);
  if (!s.ok()) return s.Context("loading the mesh config");

  Impl* self = impl.get();
  auto https = HttpsServer::Create(
      options.https, [self](SSL_CTX* ctx) { self->cert.Install(ctx); }, &impl->metrics, logger);
  if (!https.ok()) return https.status();
  impl->https = std::move(https).value();
  HttpsServer& http = *impl->https;
  http.Route("POST", "/inject", [self](const HttpRequest& req) { return self->Inject(req); });
  http.Route("GET", "/healthz", [](const HttpRequest&) { return HttpResponse{200, "text/plain", "ok\n"}; });
  http.Route("GET", "/readyz", [self](const HttpRequest&) {
    bool ready = self->cert.loaded() && self->Mesh() != nullptr;
    return HttpResponse{ready ? 200 : 503, "text/plain", ready ? "ready\n" : "not ready\n"};
  });
  http.Route("GET", "/metrics", [self](const HttpRequest&) {
    return HttpResponse{200, "text/plain; version=0.0.4", self->metrics.Expose()};
  });
  impl->push = std::make_unique<ConfigPush>(logger, impl->metrics, [self] { return self->Mesh(); });
  http.RouteStream("GET", "/v1/snapshots", [self](const HttpRequest& req, const std::shared_ptr<ResponseStream>& stream) {
    return self->push->Open(req, stream);
  });
  http.Route("POST", "/v1/ack", [self](const HttpRequest& req) { return self->push->Ack(req); });
  http.Route("GET", "/debug/proxy-config", [self](const HttpRequest& req) { return self->push->ProxyConfig(req); });
  http.Route("GET", "/debug/proxies", [self](const HttpRequest&) {
    return HttpResponse{200, "application/json", self->push->Proxies().dump(2) + "\n"};
  });
  http.Route("GET", "/debug/resources", [self](const HttpRequest&) {
    json out = {{"source", self->source ? self->source->Describe() : ""}, {"objects", json::array()}, {"skipped", json::array()}};
    if (auto model = self->source ? self->source->Current() : nullptr) {
      out["generation"] = model->generation;
      for (const auto* list : {&model->services, &model->pods, &model->resources, &model->ignored}) {
        for (const auto& o : *list) {
          out["objects"].push_back({{"kind", o.kind}, {"namespace", o.namespace_}, {"name", o.name}, {"origin", o.origin},
                                    {"used", list != &model->ignored}});
        }
      }
      out["skipped"] = model->problems;
    }
    return HttpResponse{200, "application/json", out.dump(2) + "\n"};
  });
  auto on_change = [self](std::shared_ptr<const Model> model) { self->push->ModelChanged(model); };
  if (!options.config_folder.empty() && !options.kubeconfig.empty()) {
    return Status::Error("a folder and the Kubernetes API as sources: choose one");
  }
  if (!options.config_folder.empty()) {
    impl->source = std::make_unique<FolderSource>(options.config_folder, logger, on_change);
  } else if (!options.kubeconfig.empty()) {
    auto cluster = options.kubeconfig == "in-cluster"
                       ? kube::InClusterConfig([](const std::string& name) -> std::optional<std::string> {
                           const char* v = std::getenv(name.c_str());
                           return v ? std::optional<std::string>(v) : std::nullopt;
                         })
                       : kube::LoadKubeconfig(options.kubeconfig);
    if (!cluster.ok()) return cluster.status().Context("kubernetes source");
    auto client = kube::Client::Create(*cluster, std::chrono::seconds(30));
    auto reviews = kube::Client::Create(*cluster, std::chrono::seconds(5));
    if (!client.ok()) return client.status().Context("kubernetes source");
    if (!reviews.ok()) return reviews.status().Context("kubernetes source");
    impl->kube = std::move(*client);
    impl->kube_reviews = std::move(*reviews);
    const std::string server = "https://" + cluster->host + ":" + std::to_string(cluster->port);
    impl->source = std::make_unique<KubeSource>(*impl->kube, server, logger, on_change);
    // Proxies prove their pod with its projected token, whose audience the injector set.
    impl->reviewer = std::make_unique<kube::TokenReviewer>(*impl->kube_reviews, impl->Mesh()->injection.token_audience);
    impl->push->RequireTokens(impl->reviewer.get());
  }
  if (impl->source) {
    if (Status started = impl->source->Start(); !started.ok()) return started;
  }
  impl->watcher = std::thread([self] { self->WatchFiles(); });
  return std::unique_ptr<TerndServer>(new TerndServer(std::move(impl)));
}

int TerndServer::port() const { return impl_->https->port(); }

void TerndServer::Run() { impl_->https->Run(); }

void TerndServer::Stop() {
  {
    std::lock_guard<std::mutex> lock(impl_->stop_mu);
    impl_->stopping = true;
  }
  impl_->stop_cv.notify_all();
  if (impl_->source) impl_->source->Stop();
  impl_->https->Stop();
}

}  // namespace tern::control_plane
