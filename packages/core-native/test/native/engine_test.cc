// The engine on tensors the CPU cannot touch (test/native/far_memory.h): fused or alone, mixed
// with host tensors and differently on each rank, they reduce to what a plain loop computes on
// every topology; a touch of such a tensor by the CPU faults.
#include <gtest/gtest.h>

#include "engine_job.h"
#include "far_memory.h"

namespace unicc {
namespace {

TEST(Engine, TensorsInMemoryTheCpuCannotTouchReduceLikeHostTensors) {
  const test::BackendPerRank<test::FarMemory> far(4, size_t{1} << 28);
  test::expect_engine_reduces_on_every_topology(far.memory_of());
  EXPECT_GT(far.total([](const test::FarMemory& m) { return m.uploaded.load(); }), 0u);  // results went back there
}

// A tensor alone stays in its memory where the batch has no host's side (a rank per host, the
// flat ring): its fp16 messages are coded there and cross to the host halved. Where a host's
// ranks reduce in shared memory first, it crosses to the host whole.
TEST(Engine, ATensorAloneCrossesHostsCodedWhereItLives) {
  const std::vector<test::NamedTensor> one = {{"embedding", DType::F32, RedOp::Avg, Wire::F16, 300001}};
  const struct {
    std::vector<std::string> hosts;
    bool hierarchical, stays;
  } cases[] = {{{"host-a", "host-b", "host-c"}, true, true},
               {{"host-a", "host-a", "host-b", "host-b"}, false, true},
               {{"host-a", "host-a", "host-b", "host-b"}, true, false}};
  for (const auto& c : cases) {
    test::Job job(c.hosts, c.hierarchical);
    const int n = static_cast<int>(c.hosts.size());
    const test::BackendPerRank<test::FarMemory> far(n, size_t{1} << 28);
    SCOPED_TRACE(std::to_string(n) + " ranks, " + (c.hierarchical ? "hierarchical" : "flat ring"));
    test::expect_engine_reduces_each_tensor(job, far.memory_of(), [](size_t, int) { return true; }, one);
    const size_t whole = size_t{4} * one[0].count * static_cast<size_t>(n);  // every rank's float32 bytes, once
    // Less the check's own reading of the results.
    const size_t crossed = far.total([](const test::FarMemory& m) { return m.downloaded.load(); }) - whole;
    if (c.stays) EXPECT_LT(crossed, whole * 4 / 5);  // a ring's fp16 sends: 2 (n-1)/n of half the bytes
    else EXPECT_GE(crossed, whole);
  }
}

}  // namespace
}  // namespace unicc
