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

}  // namespace
}  // namespace unicc
