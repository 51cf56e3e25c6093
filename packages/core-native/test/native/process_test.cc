// Whether a peer's process runs (the shared-memory group's and channel's liveness check): a
// child is alive while it runs, and gone once it exits, before its parent reaps it too.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "common/process.h"

namespace unicc {
namespace {

TEST(Process, AliveWhileItRunsGoneOnceItExitsEvenUnreaped) {
  int go[2];
  ASSERT_EQ(pipe(go), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    char c;
    (void)!read(go[0], &c, 1);  // until the parent says
    _exit(0);
  }
  EXPECT_TRUE(process_alive(child));
  (void)!write(go[1], "x", 1);
  bool gone = false;
  for (int i = 0; i < 200 && !gone; ++i) {
    gone = !process_alive(child);  // a zombie: not reaped yet
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(gone);
  waitpid(child, nullptr, 0);
  EXPECT_FALSE(process_alive(child));
  close(go[0]);
  close(go[1]);
}

}  // namespace
}  // namespace unicc
