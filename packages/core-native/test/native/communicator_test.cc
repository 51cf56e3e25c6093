// Collectives through whole communicators (test/native/job.h) on buffers the CPU cannot touch
// (test/native/far_memory.h): they end with the bits host memory gives, on every topology (a
// touch of such a buffer by the CPU faults), and keep their staging from one call to the next.
#include <dirent.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

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

size_t open_sockets() {
  size_t n = 0;
  DIR* d = opendir("/proc/self/fd");
  while (dirent* e = readdir(d)) {
    char target[64] = {};
    const std::string fd = std::string("/proc/self/fd/") + e->d_name;
    if (readlink(fd.c_str(), target, sizeof target - 1) > 0) n += std::string(target).rfind("socket:", 0) == 0;
  }
  closedir(d);
  return n;
}

size_t mappings_of(const std::string& path) {
  std::ifstream maps("/proc/self/maps");
  size_t n = 0;
  for (std::string line; std::getline(maps, line);) n += line.find(path) != std::string::npos;
  return n;
}

// Hosts of two ranks each on the flat ring: ranks of one host reach each other through a
// shared-memory channel, not TCP over loopback.
TEST(Communicator, AFlatRingJoinsTheRanksOfAHostThroughSharedMemory) {
  const size_t sockets_before = open_sockets();
  test::Job job({"host-a", "host-a", "host-b", "host-b"}, false);
  ASSERT_TRUE(job.ranks[0]->topology().flat_ring);
  // TCP only across hosts: pairs (0,2), (0,3), (1,2), (1,3), two streams each, both ends here.
  EXPECT_EQ(open_sockets() - sockets_before, 4u * 2 * 2);
  const std::string job_id = job.ranks[0]->options().job_id;
  for (const char* pair : {"-c0-1 (deleted)", "-c2-3 (deleted)"})
    EXPECT_EQ(mappings_of("/dev/shm/unicc-" + job_id + pair), 2u) << pair;  // mapped by both, its name gone
  EXPECT_EQ(mappings_of("/dev/shm/unicc-" + job_id + "-c0-2"), 0u);
}

}  // namespace
}  // namespace unicc
