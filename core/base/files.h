// Small file helpers shared by the binaries: whole-file reads with errors that name the path,
// and a cheap change fingerprint for reload-on-change watchers.
#pragma once

#include <string>

#include "core/base/status.h"

namespace tern {

Result<std::string> ReadFile(const std::string& path);
Status WriteFileAtomically(const std::string& path, const std::string& content, unsigned mode = 0644);

// Identity of a file's current content as the file system reports it (inode, size, mtime).
// Kubernetes updates mounted ConfigMaps and Secrets by swapping a symlink, so the inode changes
// even when mtime granularity would hide a fast rewrite.
struct FileStamp {
  unsigned long long inode = 0, size = 0;
  long long mtime_ns = 0;
  bool exists = false;
  bool operator==(const FileStamp&) const = default;
};
FileStamp StampOf(const std::string& path);

}  // namespace tern
