// Keeps a local copy of one kind of Kubernetes object, as client-go's reflector does: a LIST
// (paged), then a WATCH from the list's resourceVersion with bookmarks, resumed from the last
// version seen after every end (the server's timeoutSeconds, a dropped connection, a garbled
// event), so no change is lost across a reconnect. A version the server no longer has (410
// Gone, as an HTTP status or as an ERROR event) starts over with a LIST, which replaces the
// copy whole (deletions missed meanwhile included). Failures are reported and retried with a
// jittered back-off that doubles to a cap; a watch that ended normally is resumed at once.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/base/status.h"
#include "core/kube/client.h"

namespace tern::kube {

// What is watched: a collection's path, and the kind and apiVersion its objects have (a LIST's
// items come without them). A custom resource may name an older version to read when the
// cluster's CRD does not serve this one (404): Istio's v1 came after v1beta1.
struct ResourceKind {
  std::string path;  // "/api/v1/services", "/apis/networking.istio.io/v1/virtualservices"
  std::string kind, api_version;
  std::string fallback_path = "", fallback_api_version = "";  // "": none
};

enum class WatchEventType { kAdded, kModified, kDeleted };

// Where a reflector's copy goes. Called from the reflector's thread.
class ReflectorSink {
 public:
  virtual ~ReflectorSink() = default;
  // After each LIST: every object there is now (kind and apiVersion filled in).
  virtual void Replace(const ResourceKind& kind, std::vector<nlohmann::json> objects) = 0;
  virtual void Apply(const ResourceKind& kind, WatchEventType type, nlohmann::json object) = 0;
  // A failure, said with the path and what was wrong (a refused LIST, a garbled event, an object
  // over the size limit, the server gone); the copy keeps what it had.
  virtual void Problem(const ResourceKind& kind, const std::string& what) = 0;
};

struct ReflectorOptions {
  std::chrono::seconds watch_timeout{300};  // timeoutSeconds asked of the server for each watch
  LineStreamLimits limits;                  // limits.idle must exceed the server's bookmark period (1 min)
  std::chrono::milliseconds backoff_initial{500}, backoff_max{30000};
  int page_size = 500;
};

class Reflector {
 public:
  Reflector(Client& client, ResourceKind kind, ReflectorOptions options, ReflectorSink& sink);
  ~Reflector();
  Reflector(const Reflector&) = delete;
  Reflector& operator=(const Reflector&) = delete;

  // Runs on a thread of its own until Stop (which interrupts a watch or a back-off at once).
  Status Start();
  void Stop();

  std::string resource_version() const;
  uint64_t lists() const { return lists_; }
  uint64_t watches() const { return watches_; }
  bool synced() const { return synced_; }  // a LIST has been applied

 private:
  enum class WatchEnd { kResume, kRelist, kFailed };
  void Run();
  Status List();
  WatchEnd Watch();
  // A watch line; false ends the watch (`end` says how it ended).
  bool OnEvent(std::string_view line, bool oversized, WatchEnd& end);
  // Waits `d`, or less when stopped; false once stopped.
  bool Sleep(std::chrono::milliseconds d);
  void SetVersion(std::string rv);
  // The version read: the kind's own, or its fallback once the server said 404 to it.
  const std::string& path() const { return fallback_ ? kind_.fallback_path : kind_.path; }
  const std::string& api_version() const { return fallback_ ? kind_.fallback_api_version : kind_.api_version; }

  Client& client_;
  const ResourceKind kind_;
  const ReflectorOptions options_;
  ReflectorSink& sink_;
  int stop_pipe_[2] = {-1, -1};
  std::thread thread_;
  std::atomic<bool> stopping_{false}, synced_{false};
  std::atomic<uint64_t> lists_{0}, watches_{0};
  mutable std::mutex mu_;
  std::string resource_version_;  // the last version seen; empty: LIST first
  uint64_t events_ = 0;           // of the current watch (for reports)
  bool fallback_ = false;         // the reflector's thread's
};

}  // namespace tern::kube
