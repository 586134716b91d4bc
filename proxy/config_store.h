// The proxy's current configuration: a compiled RouteTable, replaced whole when a new snapshot
// is accepted. Readers take a shared_ptr for the life of a connection or request, so in-flight
// work finishes on the snapshot it started with; a refused snapshot leaves the current one.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "core/base/status.h"
#include "proxy/route_table.h"

namespace tern::proxy {

class ConfigStore {
 public:
  // Starts on the empty snapshot (pass everything through). Short hosts resolve under
  // `cluster_domain` (the pod's DNS domain's, `--domain`).
  explicit ConfigStore(std::string cluster_domain = "cluster.local");

  std::shared_ptr<const RouteTable> Current() const { return current_.load(std::memory_order_acquire); }
  // Counts accepted snapshots: a reader that holds a table compares it with the count it took
  // the table at (a plain load per request) and takes Current() again only when it moved.
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  // Parses, validates and compiles `text`; on success it becomes current.
  Status Load(const std::string& text);
  // The accepted document (for /config_dump), and how many snapshots were accepted/refused.
  nlohmann::json Dump() const;
  // The accepted document as compact JSON (what is kept across restarts).
  std::string DocumentText() const;
  uint64_t accepted() const { return accepted_.load(); }
  uint64_t refused() const { return refused_.load(); }

 private:
  const std::string cluster_domain_;
  std::atomic<std::shared_ptr<const RouteTable>> current_;
  mutable std::mutex mu_;
  std::string document_;  // compact JSON; a parsed tree would weigh many times more
  std::atomic<uint64_t> accepted_{0}, refused_{0};
  std::atomic<uint64_t> generation_{0};
};

}  // namespace tern::proxy
