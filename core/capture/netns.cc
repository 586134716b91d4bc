#include "core/capture/netns.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

namespace tern::capture {

Status RunInNetns(const std::string& netns_path, const std::function<Status()>& work) {
  if (netns_path.empty()) return work();
  int fd = ::open(netns_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Error("cannot open network namespace " + netns_path + ": " + std::strerror(errno));
  Status result;
  std::thread runner([&] {
    if (::setns(fd, CLONE_NEWNET) != 0) {
      result = Status::Error("cannot enter network namespace " + netns_path + ": " + std::strerror(errno));
      return;
    }
    result = work();
  });
  runner.join();
  ::close(fd);
  return result;
}

Status RunInScratchNetns(const std::function<Status()>& work) {
  Status result;
  // unshare(CLONE_NEWNET) affects the calling thread alone; the namespace dies with the thread.
  std::thread runner([&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      result = Status::Error(std::string("cannot create a scratch network namespace: ") + std::strerror(errno));
      return;
    }
    result = work();
  });
  runner.join();
  return result;
}

}  // namespace tern::capture
