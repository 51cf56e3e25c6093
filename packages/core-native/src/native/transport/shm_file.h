#pragma once
#include <cstddef>
#include <string>

namespace unicc {

// Gives a new shared-memory file its size and its pages. tmpfs hands a page out only when it is
// first touched, so a /dev/shm too small for the job (a container's is 64 MB by default) would
// otherwise kill the process with SIGBUS in the middle of a collective. Returns "" or why not,
// with what /dev/shm has free and what to do.
std::string reserve_shared_file(int fd, size_t bytes);

// What to do when a job's shared-memory name is taken already.
constexpr const char* kSharedNameTaken = "a job with the same UNICC_JOB_ID is running, or a crashed one left it: remove it";

}  // namespace unicc
