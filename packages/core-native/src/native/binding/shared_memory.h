// A file mapped into this process (see shared_memory.cc for which files may be). Held by
// shared_ptr: the JavaScript ArrayBuffer over it, the command ring's buffer table and each
// request in flight on it hold one, so the pages stay until the last of them lets go.
#pragma once
#include <napi.h>

#include <cstddef>
#include <memory>
#include <string>

namespace unicc {

struct Mapping {
  void* data = nullptr;
  size_t bytes = 0;
  Mapping(void* d, size_t n) : data(d), bytes(n) {}
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping();
};

// Maps `bytes` of the file at `path` read-write and shared; throws std::runtime_error saying why not.
std::shared_ptr<Mapping> map_shared_file(const std::string& path, size_t bytes);

// An ArrayBuffer over the mapping (which it keeps alive).
Napi::ArrayBuffer array_buffer_of(Napi::Env env, std::shared_ptr<Mapping> m);

}  // namespace unicc
