// mapShared(path, bytes): maps a file that another process (the bridge's Python client) made, as
// an ArrayBuffer over the same pages, so the core reduces that process's tensor bytes in place.
// The path is a slab in the bridge's folder (/dev/shm, or the folder `unicc run --bridge-dir`
// names, whatever its file system: the server checks the name) or /proc/<pid>/fd/<n> (a descriptor
// the client holds: torch's shared storages), which must be shared memory (tmpfs: shm files and
// memfds), so a client cannot make the bridge write through to any file it has open on disk. The
// mapping lives until the ArrayBuffer is collected.
#include <fcntl.h>
#include <linux/magic.h>
#include <napi.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace unicc {

namespace {

Napi::Value MapShared(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsNumber())
    throw Napi::TypeError::New(env, "mapShared(path, bytes): path must be a string and bytes a number");
  const std::string path = info[0].As<Napi::String>();
  const double want = info[1].As<Napi::Number>().DoubleValue();
  if (!(want > 0) || want != static_cast<double>(static_cast<size_t>(want)))
    throw Napi::RangeError::New(env, "mapShared: bytes must be a positive integer");
  const size_t bytes = static_cast<size_t>(want);

  // /proc/<pid>/fd/<n> is a link by design (to a descriptor's file); any other link is refused.
  const bool by_descriptor = path.rfind("/proc/", 0) == 0;
  const int fd = open(path.c_str(), O_RDWR | O_CLOEXEC | (by_descriptor ? 0 : O_NOFOLLOW));
  if (fd < 0) throw Napi::Error::New(env, "mapShared: cannot open " + path + ": " + std::strerror(errno));
  struct statfs fs {};
  if (by_descriptor && (fstatfs(fd, &fs) != 0 || fs.f_type != TMPFS_MAGIC)) {
    close(fd);
    throw Napi::Error::New(env, "mapShared: " + path + " is not shared memory (a tmpfs file or memfd)");
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || static_cast<size_t>(st.st_size) < bytes) {
    close(fd);
    throw Napi::Error::New(env, "mapShared: " + path + " is not a regular file of at least " + std::to_string(bytes) +
                                    " bytes");
  }
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const int map_errno = errno;
  close(fd);  // the mapping keeps the pages; the descriptor is not needed
  if (p == MAP_FAILED) throw Napi::Error::New(env, "mapShared: mmap of " + path + " failed: " + std::strerror(map_errno));
  return Napi::ArrayBuffer::New(env, p, bytes, [bytes](Napi::Env, void* data) { munmap(data, bytes); });
}

}  // namespace

void RegisterSharedMemory(Napi::Env env, Napi::Object exports) {
  exports.Set("mapShared", Napi::Function::New(env, MapShared, "mapShared"));
}

}  // namespace unicc
