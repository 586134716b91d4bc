// Discovery from a folder of Kubernetes manifests (`kubectl apply -f DIR` style: *.yaml, *.yml
// and *.json, multi-document, in sub-folders too): the source for running without Kubernetes
// and for the local mesh. A kustomization.yaml's `namespace:` is the folder's default
// namespace. The folder is watched with inotify; every change (debounced 50 ms) builds a new
// model and hands it to `on_change`. A file that does not parse is reported and the rest used.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "control-plane/discovery/model.h"
#include "control-plane/discovery/source.h"
#include "core/base/status.h"
#include "core/log/logger.h"

namespace tern::control_plane {

class FolderSource final : public DiscoverySource {
 public:
  FolderSource(std::string dir, const Logger& log, OnChange on_change);
  ~FolderSource() override;
  FolderSource(const FolderSource&) = delete;
  FolderSource& operator=(const FolderSource&) = delete;

  // Reads the folder once (on_change gets the first model) and starts watching it.
  Status Start() override;
  void Stop() override;
  std::shared_ptr<const Model> Current() const override;
  std::string Describe() const override { return "folder " + dir_; }

 private:
  void Load();
  void WatchFolders();
  void Watch();

  const std::string dir_;
  const Logger& log_;
  OnChange on_change_;
  int inotify_ = -1, stop_pipe_[2] = {-1, -1};
  std::vector<int> watches_;  // the watcher thread's, after Start
  std::thread watcher_;
  uint64_t generation_ = 0;
  mutable std::mutex mu_;
  std::shared_ptr<const Model> current_;
};

}  // namespace tern::control_plane
