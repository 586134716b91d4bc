#include "control-plane/discovery/folder_source.h"

#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>

#include "core/base/files.h"
#include "core/yaml/yaml_json.h"

namespace tern::control_plane {

namespace fs = std::filesystem;

namespace {

constexpr auto kDebounce = std::chrono::milliseconds(50);
constexpr uintmax_t kMaxFileBytes = 16 << 20;  // a manifest file past this is refused, not read

bool IsManifest(const fs::path& p) {
  std::string ext = p.extension().string();
  return ext == ".yaml" || ext == ".yml" || ext == ".json";
}

}  // namespace

FolderSource::FolderSource(std::string dir, const Logger& log, OnChange on_change)
    : dir_(std::move(dir)), log_(log), on_change_(std::move(on_change)) {}

FolderSource::~FolderSource() { Stop(); }

std::shared_ptr<const Model> FolderSource::Current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return current_;
}

void FolderSource::Load() {
  std::vector<SourceDocument> documents;
  std::vector<std::string> file_problems;
  std::string default_namespace = "default";
  std::vector<fs::path> files;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir_, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec) && IsManifest(it->path())) files.push_back(it->path());
  }
  if (ec) file_problems.push_back(dir_ + ": " + ec.message());
  std::sort(files.begin(), files.end());
  for (const auto& path : files) {
    const std::string rel = fs::relative(path, dir_, ec).string();
    if (fs::file_size(path, ec) > kMaxFileBytes) {
      file_problems.push_back(rel + ": larger than " + std::to_string(kMaxFileBytes) + " bytes, not read");
      continue;
    }
    auto text = ReadFile(path.string());
    if (!text.ok()) {
      file_problems.push_back(rel + ": " + text.status().message());
      continue;
    }
    auto docs = ParseYamlDocuments(*text);
    if (!docs.ok()) {
      file_problems.push_back(rel + ": " + docs.status().message());
      continue;
    }
    const bool kustomization = path.filename() == "kustomization.yaml" || path.filename() == "kustomization.yml";
    for (size_t i = 0; i < docs->size(); ++i) {
      const auto& doc = (*docs)[i];
      if (kustomization) {  // not a resource: its namespace is the folder's default
        if (doc.is_object() && doc.contains("namespace") && doc["namespace"].is_string()) default_namespace = doc["namespace"];
        continue;
      }
      documents.push_back({rel + (docs->size() > 1 ? "#" + std::to_string(i) : ""), doc});
    }
  }
  auto built = BuildModel(documents, default_namespace, ++generation_);
  auto model = std::make_shared<Model>(*built);
  model->problems.insert(model->problems.begin(), file_problems.begin(), file_problems.end());
  for (const auto& p : model->problems) log_.Warn("discovery: object skipped", {{"source", dir_}, {"problem", p}});
  log_.Info("discovery: folder read", {{"source", dir_},
                                       {"generation", model->generation},
                                       {"services", model->services.size()},
                                       {"pods", model->pods.size()},
                                       {"resources", model->resources.size()},
                                       {"skipped", model->problems.size()}});
  {
    std::lock_guard<std::mutex> lock(mu_);
    current_ = model;
  }
  on_change_(model);
}

Status FolderSource::Start() {
  std::error_code ec;
  if (!fs::is_directory(dir_, ec)) return Status::Error("--config-folder " + dir_ + ": not a directory");
  inotify_ = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (inotify_ < 0 || pipe(stop_pipe_) != 0) return Status::Error("inotify: " + std::string(strerror(errno)));
  WatchFolders();
  Load();
  watcher_ = std::thread([this] { Watch(); });
  return Status::Ok();
}

void FolderSource::Stop() {
  if (stop_pipe_[1] >= 0) {
    char one = 1;
    (void)!write(stop_pipe_[1], &one, 1);
  }
  if (watcher_.joinable()) watcher_.join();
  for (int* fd : {&inotify_, &stop_pipe_[0], &stop_pipe_[1]}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
}

// Every folder under the root is watched; the set is renewed after each change (a new
// sub-folder is watched from then on). Watches are set before the folder is read, so no change
// falls between the read and the watch.
void FolderSource::WatchFolders() {
  constexpr uint32_t kEvents = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_DELETE_SELF;
  for (int wd : watches_) inotify_rm_watch(inotify_, wd);
  watches_.clear();
  std::error_code ec;
  int wd = inotify_add_watch(inotify_, dir_.c_str(), kEvents);
  if (wd >= 0) watches_.push_back(wd);
  for (auto it = fs::recursive_directory_iterator(dir_, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_directory(ec)) continue;
    wd = inotify_add_watch(inotify_, it->path().c_str(), kEvents);
    if (wd >= 0) watches_.push_back(wd);
  }
}

void FolderSource::Watch() {
  char buf[16384];
  for (;;) {
    pollfd fds[2] = {{inotify_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    if (poll(fds, 2, -1) < 0 && errno != EINTR) return;
    if (fds[1].revents) return;
    if (!(fds[0].revents & POLLIN)) continue;
    // A change: let the writer finish (an editor writes, renames, touches), then read anew.
    std::this_thread::sleep_for(kDebounce);
    while (read(inotify_, buf, sizeof buf) > 0) {
    }
    WatchFolders();
    Load();
  }
}

}  // namespace tern::control_plane
