// Collectives through whole communicators (test/native/job.h) on buffers the CPU cannot touch
// (test/native/far_memory.h) end with the bits host memory gives; where such memory cannot go
// yet, every rank says why instead of touching it.
#include <gtest/gtest.h>

#include "far_memory.h"
#include "job.h"

namespace unicc {
namespace {

using test::Job;

TEST(Communicator, CollectivesOnMemoryTheCpuCannotTouchGiveHostMemorysBits) {
  test::FarMemory far(size_t{1} << 30);
  test::expect_collectives_give_host_bits(far);
  EXPECT_GT(far.downloaded.load(), 0u);  // it ran there, through the host
}

TEST(Communicator, RanksSharingAHostRefuseMemoryTheCpuCannotTouchSayingWhy) {
  Job job({"host-a", "host-a", "host-b", "host-b"});
  test::FarMemory far(size_t{1} << 20);
  std::vector<char*> bufs;
  for (int r = 0; r < 4; ++r) bufs.push_back(static_cast<char*>(far.allocate(4000)));
  const auto errors = job.run([&](int r) {
    Op op;
    op.coll = Coll::Allreduce;
    op.count = 1000;
    op.buf = bufs[r];
    op.memory = &far;
    return op;
  });
  for (int r = 0; r < 4; ++r) {
    EXPECT_NE(errors[r].find("rank "), std::string::npos) << errors[r];
    EXPECT_NE(errors[r].find("far memory cannot use the shared-memory group of 2 ranks"), std::string::npos) << errors[r];
    EXPECT_NE(errors[r].find("UNICC_HIERARCHICAL=0"), std::string::npos) << errors[r];
  }
  EXPECT_EQ(far.downloaded.load() + far.uploaded.load(), 0u);
}

}  // namespace
}  // namespace unicc
