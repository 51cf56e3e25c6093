// mapShared(path, bytes): maps a file that another process (the bridge's Python client) made, as
// an ArrayBuffer over the same pages, so the core reduces that process's tensor bytes in place.
// The path is a slab in the bridge's folder (/dev/shm, or the folder `unicc run --bridge-dir`
// names, whatever its file system: the server checks the name) or /proc/<pid>/fd/<n> (a descriptor
// the client holds: torch's shared storages), which must be shared memory (tmpfs: shm files and
// memfds), so a client cannot make the bridge write through to any file it has open on disk. The
// mapping lives until the ArrayBuffer is collected (and, for the command ring, until its requests
// on it are done).
#include "binding/shared_memory.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace unicc {

Mapping::~Mapping() { munmap(data, bytes); }

std::shared_ptr<Mapping> map_shared_file(const std::string& path, size_t bytes) {
  // /proc/<pid>/fd/<n> is a link by design (to a descriptor's file); any other link is refused.
  const bool by_descriptor = path.rfind("/proc/", 0) == 0;
  const int fd = open(path.c_str(), O_RDWR | O_CLOEXEC | (by_descriptor ? 0 : O_NOFOLLOW));
  if (fd < 0) throw std::runtime_error("mapShared: cannot open " + path + ": " + std::strerror(errno));
  struct statfs fs {};
  if (by_descriptor && (fstatfs(fd, &fs) != 0 || fs.f_type != TMPFS_MAGIC)) {
    close(fd);
    throw std::runtime_error("mapShared: " + path + " is not shared memory (a tmpfs file or memfd)");
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || static_cast<size_t>(st.st_size) < bytes) {
    close(fd);
    throw std::runtime_error("mapShared: " + path + " is not a regular file of at least " + std::to_string(bytes) + " bytes");
  }
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const int map_errno = errno;
  close(fd);  // the mapping keeps the pages; the descriptor is not needed
  if (p == MAP_FAILED) throw std::runtime_error("mapShared: mmap of " + path + " failed: " + std::strerror(map_errno));
  return std::make_shared<Mapping>(p, bytes);
}

Napi::ArrayBuffer array_buffer_of(Napi::Env env, std::shared_ptr<Mapping> m) {
  auto* hold = new std::shared_ptr<Mapping>(std::move(m));
  return Napi::ArrayBuffer::New(env, (*hold)->data, (*hold)->bytes,
                                [](Napi::Env, void*, std::shared_ptr<Mapping>* h) { delete h; }, hold);
}

namespace {

// The requested size, checked: a positive integer.
size_t byte_count(const Napi::Value& v) {
  const double want = v.As<Napi::Number>().DoubleValue();
  if (!(want > 0) || want != static_cast<double>(static_cast<size_t>(want)))
    throw Napi::RangeError::New(v.Env(), "mapShared: bytes must be a positive integer");
  return static_cast<size_t>(want);
}

Napi::Value MapShared(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsNumber())
    throw Napi::TypeError::New(env, "mapShared(path, bytes): path must be a string and bytes a number");
  const size_t bytes = byte_count(info[1]);
  try {
    return array_buffer_of(env, map_shared_file(info[0].As<Napi::String>(), bytes));
  } catch (const std::runtime_error& e) {
    throw Napi::Error::New(env, e.what());
  }
}

}  // namespace

void RegisterSharedMemory(Napi::Env env, Napi::Object exports) {
  exports.Set("mapShared", Napi::Function::New(env, MapShared, "mapShared"));
}

}  // namespace unicc
