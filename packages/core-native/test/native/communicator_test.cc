// Collectives through whole communicators (test/native/job.h) on buffers the CPU cannot touch
// (test/native/far_memory.h) end with the bits host memory gives, on every topology: a touch of
// such a buffer by the CPU faults.
#include <gtest/gtest.h>

#include "far_memory.h"
#include "job.h"

namespace unicc {
namespace {

TEST(Communicator, CollectivesOnMemoryTheCpuCannotTouchGiveHostMemorysBits) {
  test::FarMemory far(size_t{1} << 30);
  test::expect_collectives_give_host_bits([&far](int) -> MemoryBackend& { return far; });
  EXPECT_GT(far.downloaded.load(), 0u);  // it ran there, through the host
}

}  // namespace
}  // namespace unicc
