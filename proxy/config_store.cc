#include "proxy/config_store.h"

#include "core/yaml/yaml_json.h"

namespace tern::proxy {

ConfigStore::ConfigStore(std::string cluster_domain) : cluster_domain_(std::move(cluster_domain)) {
  current_.store(*RouteTable::Build(config::EmptySnapshot(), nullptr, cluster_domain_));
  document_ = "{}";
}

Status ConfigStore::Load(const std::string& text) {
  auto doc = ParseYaml(text);
  if (!doc.ok()) {
    refused_++;
    return doc.status();
  }
  auto snapshot = config::ParseSnapshotJson(*doc);
  if (!snapshot.ok()) {
    refused_++;
    return snapshot.status();
  }
  // Clusters and endpoints that stay keep their state (ejections, requests in flight).
  std::shared_ptr<const RouteTable> previous = current_.load(std::memory_order_acquire);
  auto table = RouteTable::Build(*snapshot, previous.get(), cluster_domain_);
  if (!table.ok()) {
    refused_++;
    return table.status();
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    document_ = doc->dump();
  }
  current_.store(*table, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_release);
  accepted_++;
  return Status::Ok();
}

std::string ConfigStore::DocumentText() const {
  std::lock_guard<std::mutex> lock(mu_);
  return document_;
}

nlohmann::json ConfigStore::Dump() const {  // parsed again on demand: the text is far smaller
  std::lock_guard<std::mutex> lock(mu_);
  return document_.empty() ? nlohmann::json(nullptr) : nlohmann::json::parse(document_);
}

}  // namespace tern::proxy
