// The floor of a small allreduce inside one host: the shared-memory group alone, driven from C++
// with no binding above it. Forks `ranks` processes on one ShmGroup; each step is a barrier and a
// timed 1 KiB float32 allreduce, each call after `busy_ns` of busy work (a binding's per-call
// cost, simulated). Rank 0 prints the median and 90th percentile. Where ranks share cores, compare
// it with `unicc-bench` at 1K: the difference is what the layers above the core cost per call.
//   unicc_shm_latency [ranks=4] [busy_ns=0] [steps=3000]
//   (cmake --build build --target unicc_shm_latency; it lands beside the addon)
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "algorithms/local.h"
#include "memory/user_buffer.h"
#include "transport/shm_group.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kElements = 256;  // 1 KiB of float32
constexpr int kWarmup = 200;

void busy(long ns) {
  const auto until = Clock::now() + std::chrono::nanoseconds(ns);
  while (Clock::now() < until) {
  }
}

unicc::Desc describe(uint32_t seq, unicc::Coll coll, size_t count) {
  unicc::Desc d;
  d.seq = seq;
  d.coll = static_cast<uint8_t>(coll);
  d.dtype = static_cast<uint8_t>(unicc::DType::F32);
  d.op = static_cast<uint8_t>(unicc::RedOp::Sum);
  d.count = count;
  return d;
}

// One rank's steps; the allreduce's times in microseconds, warm-up left out.
std::vector<double> run_rank(const std::string& name, int rank, int ranks, long busy_ns, int steps) {
  std::vector<unicc::ShmGroup::Member> members;
  for (int r = 0; r < ranks; ++r) members.push_back({"rank " + std::to_string(r)});
  if (rank > 0) usleep(100'000);  // rank 0 creates the segment first
  unicc::ShmGroup g(name, rank == 0 ? unicc::ShmGroup::Open::Create : unicc::ShmGroup::Open::Existing, rank,
                    members, 128 << 10, 10'000);
  std::vector<float> buf(kElements);
  std::vector<double> us;
  uint32_t seq = 0;
  for (int i = 0; i < kWarmup + steps; ++i) {
    std::fill(buf.begin(), buf.end(), 1.0f + rank);
    busy(busy_ns);
    unicc::local_barrier(g, describe(seq++, unicc::Coll::Barrier, 0));
    busy(busy_ns);
    const auto t0 = Clock::now();
    unicc::local_allreduce(g, describe(seq++, unicc::Coll::Allreduce, kElements), buf.data(), kElements,
                           unicc::DType::F32, unicc::RedOp::Sum, 64 << 10, 1);
    const auto t1 = Clock::now();
    if (i >= kWarmup) us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  const float want = ranks * (ranks + 1) / 2.0f;  // ranks contributed 1, 2, ..., ranks
  if (buf[0] != want || buf[kElements - 1] != want) {
    std::fprintf(stderr, "rank %d: allreduce gave %g, want %g\n", rank, buf[0], want);
    std::exit(1);
  }
  if (rank == 0) g.unlink();
  return us;
}

}  // namespace

int main(int argc, char** argv) {
  const int ranks = argc > 1 ? std::atoi(argv[1]) : 4;
  const long busy_ns = argc > 2 ? std::atol(argv[2]) : 0;
  const int steps = argc > 3 ? std::atoi(argv[3]) : 3000;
  if (ranks < 2 || ranks > unicc::ShmGroup::kMaxLocal || busy_ns < 0 || steps < 1) {
    std::fprintf(stderr, "usage: unicc_shm_latency [ranks 2..%d] [busy_ns >= 0] [steps >= 1]\n",
                 unicc::ShmGroup::kMaxLocal);
    return 2;
  }
  const std::string name = "/unicc-latency-" + std::to_string(getpid());
  int rank = 0;
  for (int r = 1; r < ranks && rank == 0; ++r)
    if (fork() == 0) rank = r;
  std::vector<double> us = run_rank(name, rank, ranks, busy_ns, steps);
  if (rank > 0) _exit(0);
  int failed = 0;
  for (int status; wait(&status) > 0;) failed |= !WIFEXITED(status) || WEXITSTATUS(status) != 0;
  std::sort(us.begin(), us.end());
  std::printf("%d ranks, %ld ns busy before each call: 1 KiB allreduce median %.2f us, p90 %.2f us (%d steps)\n",
              ranks, busy_ns, us[us.size() / 2], us[us.size() * 9 / 10], steps);
  return failed;
}
