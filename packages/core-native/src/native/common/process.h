#pragma once
#include <sys/types.h>

namespace unicc {

// Whether the process `pid` (of this pid namespace) still runs: gone, or a zombie its parent has
// not reaped yet (a killed child stays one until then), is not. For peers on this host.
bool process_alive(pid_t pid);

}  // namespace unicc
