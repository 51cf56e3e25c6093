// Collectives through whole communicators (test/native/job.h) on buffers the CPU cannot touch
// (test/native/far_memory.h): they end with the bits host memory gives, on every topology (a
// touch of such a buffer by the CPU faults), and keep their staging from one call to the next.
#include <gtest/gtest.h>

#include "far_memory.h"
#include "job.h"

namespace unicc {
namespace {

using FarPerRank = test::BackendPerRank<test::FarMemory>;

TEST(Communicator, CollectivesOnMemoryTheCpuCannotTouchGiveHostMemorysBits) {
  const FarPerRank far(4, size_t{1} << 30);
  test::expect_collectives_give_host_bits(far.memory_of());
  EXPECT_GT(far.total([](const test::FarMemory& m) { return m.downloaded.load(); }), 0u);  // it ran there, through the host
}

// On a GPU, staging allocated per collective would put cudaMalloc and cudaFree (which waits for
// the device) on every collective's path.
TEST(Communicator, RepeatedCollectivesOnSuchMemoryAllocateItsStagingOnce) {
  test::Job job({"host-a", "host-b", "host-c"});
  const FarPerRank far(3, size_t{1} << 28);
  std::vector<std::vector<float>> host;
  for (uint64_t r = 0; r < 3; ++r) host.push_back(test::random_floats(100003, r));
  const test::Buffers bufs(far.memory_of(), host);
  const auto allocations = [&far] { return far.total([](const test::FarMemory& m) { return m.allocations.load(); }); };
  const size_t for_buffers = allocations();
  const auto fp16_allreduce = [&](int r) {
    Op op;
    op.coll = Coll::Allreduce;
    op.wire = Wire::F16;
    op.count = host[0].size();
    op.buf = bufs.at[r];
    op.memory = far.ranks[static_cast<size_t>(r)].get();
    return op;
  };
  const std::vector<std::string> ok(3);
  ASSERT_EQ(job.run(fp16_allreduce), ok);
  const size_t after_one = allocations();
  EXPECT_GT(after_one, for_buffers);  // staged through its own memory
  for (int i = 0; i < 4; ++i) ASSERT_EQ(job.run(fp16_allreduce), ok);
  EXPECT_EQ(allocations(), after_one);
}

}  // namespace
}  // namespace unicc
