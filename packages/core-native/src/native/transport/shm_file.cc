#include "transport/shm_file.h"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cstring>

#include "common/error.h"

namespace unicc {

namespace {

std::string mib(double bytes) { return std::to_string(static_cast<long long>(bytes / (1 << 20) + 0.5)) + " MiB"; }

}  // namespace

std::string reserve_shared_file(int fd, size_t bytes) {
  if (ftruncate(fd, static_cast<off_t>(bytes)) != 0) return errno_text();
  const int rc = posix_fallocate(fd, 0, static_cast<off_t>(bytes));
  if (rc == 0) return "";
  std::string why = std::strerror(rc);
  struct statvfs fs{};
  if (fstatvfs(fd, &fs) == 0)
    why += "; /dev/shm has " + mib(static_cast<double>(fs.f_bavail) * fs.f_frsize) + " free of " +
           mib(static_cast<double>(fs.f_blocks) * fs.f_frsize) + " and this needs " + mib(static_cast<double>(bytes));
  return why + ". Give the ranks more shared memory (a container's /dev/shm: docker run --shm-size=4g, or a "
               "memory-backed emptyDir on Kubernetes)";
}

}  // namespace unicc
