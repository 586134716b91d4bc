// Where discovery's model comes from: a folder of manifests (folder_source.h) or the Kubernetes
// API (kube_source.h). A source hands every new model to its OnChange, from a thread of its own.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "control-plane/discovery/model.h"
#include "core/base/status.h"

namespace tern::control_plane {

class DiscoverySource {
 public:
  using OnChange = std::function<void(std::shared_ptr<const Model>)>;
  virtual ~DiscoverySource() = default;
  // Starts reading and watching; the first model follows once the source has read everything.
  virtual Status Start() = 0;
  virtual void Stop() = 0;
  // The last model built; null before the first.
  virtual std::shared_ptr<const Model> Current() const = 0;
  // What it reads, for /debug/resources ("folder /etc/mesh", "kubernetes https://10.96.0.1:443").
  virtual std::string Describe() const = 0;
};

}  // namespace tern::control_plane
