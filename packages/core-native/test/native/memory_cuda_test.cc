// The CUDA memory backend against the host backend, bit for bit, on random data. Without a CUDA
// device (no driver, or no GPU) the device tests skip, saying why; the checks of what the
// backend refuses without a device run everywhere.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "memory/cuda/cuda_backend.h"
#include "memory_reference.h"
#include "engine_job.h"
#include "job.h"
#include "mesh.h"
#include "algorithms/schedules.h"

namespace unicc {
namespace {

#define CUDA_OK(call) ASSERT_EQ((call), cudaSuccess) << #call

// Device memory for one test, freed at the end.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t bytes) {
    if (cudaMalloc(&p_, bytes ? bytes : 1) != cudaSuccess) throw std::runtime_error("cudaMalloc of " + std::to_string(bytes) + " bytes failed");
  }
  ~DeviceBuffer() { cudaFree(p_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  char* get() const { return static_cast<char*>(p_); }

 private:
  void* p_ = nullptr;
};

class CudaMemory : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (cuda_device_count(&why) == 0) GTEST_SKIP() << "no CUDA device, so the device tests do not run: " << why;
  }
};

void upload(void* dst, const void* src, size_t bytes) {
  ASSERT_EQ(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), cudaSuccess);
}
void download(void* dst, const void* src, size_t bytes) {
  ASSERT_EQ(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), cudaSuccess);
}

// Sizes with vector tails, an offset start (the unaligned kernels) and one of several waves.
const size_t kSizes[] = {1, 7, 4099, size_t{3} << 20};

// Bit for bit, except that any NaN matches any NaN (GPU arithmetic makes its canonical NaN).
::testing::AssertionResult same_floats(const float* got, const float* want, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (std::memcmp(got + i, want + i, 4) != 0 && !(std::isnan(got[i]) && std::isnan(want[i])))
      return ::testing::AssertionFailure() << "[" << i << "] " << got[i] << " instead of " << want[i];
  return ::testing::AssertionSuccess();
}

template <typename T>
void check_reduce(CudaBackend& dev, DType t) {
  std::mt19937_64 rng(static_cast<uint64_t>(t) + 101);
  for (RedOp op : {RedOp::Sum, RedOp::Prod, RedOp::Min, RedOp::Max})
    for (size_t n : kSizes)
      for (size_t offset : {size_t{0}, size_t{1}}) {
        const std::vector<T> a = testref::random_values<T>(n, rng), b = testref::random_values<T>(n, rng);
        std::vector<T> want(n), got(n);
        host_backend().reduce(want.data(), a.data(), b.data(), n, t, op);
        const size_t bytes = (n + offset) * sizeof(T);
        DeviceBuffer da(bytes), db(bytes);
        T* pa = reinterpret_cast<T*>(da.get()) + offset;
        T* pb = reinterpret_cast<T*>(db.get()) + offset;
        upload(pa, a.data(), n * sizeof(T));
        upload(pb, b.data(), n * sizeof(T));
        dev.reduce(pa, pa, pb, n, t, op);  // in place, as algorithms reduce into their buffer
        dev.synchronize();
        download(got.data(), pa, n * sizeof(T));
        ASSERT_EQ(std::memcmp(got.data(), want.data(), n * sizeof(T)), 0) << dtype_name(t) << " " << redop_name(op) << ", n " << n << ", offset " << offset;
      }
}

TEST_F(CudaMemory, ReduceMatchesTheHostBitForBit) {
  CudaBackend dev(0);
  check_reduce<float>(dev, DType::F32);
  check_reduce<double>(dev, DType::F64);
  check_reduce<int32_t>(dev, DType::I32);
  check_reduce<int64_t>(dev, DType::I64);
}

TEST_F(CudaMemory, SixteenBitMessagesMatchTheHostBitForBit) {
  CudaBackend dev(0);
  std::mt19937_64 rng(103);
  for (Wire w : {Wire::F16, Wire::BF16})
    for (float magnitude : {1e-6f, 3.f, 1e7f})
      for (size_t n : kSizes)
        for (size_t offset : {size_t{0}, size_t{1}}) {
          const std::vector<float> x = testref::codec_input(n, magnitude, rng);
          std::vector<uint8_t> want(wire16_bytes(n)), got(wire16_bytes(n), 0xee);
          host_backend().encode16(w, x.data(), n, want.data());
          DeviceBuffer dx((n + offset) * 4), dmsg(wire16_bytes(n) + 4 * offset);
          float* px = reinterpret_cast<float*>(dx.get()) + offset;
          char* pm = dmsg.get() + 4 * offset;
          upload(px, x.data(), n * 4);
          CUDA_OK(cudaMemset(pm, 0xee, wire16_bytes(n)));  // poison: every byte must be written
          dev.encode16(w, px, n, pm);
          dev.synchronize();
          download(got.data(), pm, got.size());
          ASSERT_EQ(got, want) << wire_name(w) << ", magnitude " << magnitude << ", n " << n << ", offset " << offset;
          // And back, written and folded into values already there, against the host's decoder.
          for (RedOp op : {RedOp::Sum, RedOp::Min}) {
            const std::vector<float> base = testref::random_values<float>(n, rng);
            std::vector<float> host_plain(n), host_fold = base, dev_plain(n), dev_fold(n);
            host_backend().decode16(w, want.data(), n, host_plain.data(), false, op);
            host_backend().decode16(w, want.data(), n, host_fold.data(), true, op);
            dev.decode16(w, pm, n, px, false, op);
            dev.synchronize();
            download(dev_plain.data(), px, n * 4);
            upload(px, base.data(), n * 4);
            dev.decode16(w, pm, n, px, true, op);
            dev.synchronize();
            download(dev_fold.data(), px, n * 4);
            ASSERT_TRUE(same_floats(dev_plain.data(), host_plain.data(), n)) << wire_name(w) << " decode, n " << n;
            ASSERT_TRUE(same_floats(dev_fold.data(), host_fold.data(), n)) << wire_name(w) << " " << redop_name(op) << " fold, n " << n;
          }
        }
}

TEST_F(CudaMemory, CopyMovesBetweenHostAndDevice) {
  CudaBackend dev(0);
  std::mt19937_64 rng(107);
  std::vector<uint8_t> src(1 << 20), back(src.size());
  for (uint8_t& c : src) c = static_cast<uint8_t>(rng());
  DeviceBuffer a(src.size()), b(src.size());
  dev.copy(a.get(), src.data(), src.size());
  dev.copy(b.get(), a.get(), src.size());
  dev.copy(back.data(), b.get(), src.size());
  dev.synchronize();
  EXPECT_EQ(back, src);
}

// Work ordered after another stream sees that stream's writes; the returned event completes.
TEST_F(CudaMemory, WorkRunsAfterTheGivenStreamAndCompletesAsAnEvent) {
  cudaStream_t framework;
  CUDA_OK(cudaStreamCreateWithFlags(&framework, cudaStreamNonBlocking));
  {
    CudaBackend dev(0);
    const size_t n = size_t{16} << 20;  // large enough that the framework's copy is still running
    std::vector<float> twos(n, 2.f), got(n);
    float* ones = nullptr;  // pinned, so that the framework's copy is asynchronous
    CUDA_OK(cudaMallocHost(reinterpret_cast<void**>(&ones), n * 4));
    for (size_t i = 0; i < n; ++i) ones[i] = 1.f;
    DeviceBuffer a(n * 4), b(n * 4);
    upload(b.get(), twos.data(), n * 4);
    CUDA_OK(cudaMemsetAsync(a.get(), 0, n * 4, framework));
    CUDA_OK(cudaMemcpyAsync(a.get(), ones, n * 4, cudaMemcpyHostToDevice, framework));
    dev.after(framework);
    dev.reduce(a.get(), a.get(), b.get(), n, DType::F32, RedOp::Sum);
    const CudaEvent done = dev.record();
    done.wait();
    EXPECT_TRUE(done.done());
    download(got.data(), a.get(), n * 4);
    cudaFreeHost(ones);
    for (size_t i = 0; i < n; i += 4097) ASSERT_EQ(got[i], 3.f) << "[" << i << "]";
  }
  cudaStreamDestroy(framework);
}

TEST_F(CudaMemory, RefusesHostMemoryNamingTheArgument) {
  CudaBackend dev(0);
  std::vector<float> host(16, 1.f);
  DeviceBuffer d(64);
  try {
    dev.reduce(d.get(), host.data(), d.get(), 16, DType::F32, RedOp::Sum);
    FAIL() << "host memory was accepted";
  } catch (const CommError& e) {
    EXPECT_NE(std::string(e.what()).find("host memory as the first input"), std::string::npos) << e.what();
  }
}

// The executor on device memory: ranks (threads joined by sockets, as hosts would be) run the
// ring and recursive doubling on buffers in GPU memory, with coding and reduction on the GPU, and
// end with the bits the same schedules give on host memory.
// A backend (and its stream) per rank.
using BackendPerRank = test::BackendPerRank<CudaBackend>;

TEST_F(CudaMemory, SchedulesOnDeviceMemoryGiveTheHostsBits) {
  const int n = 3;
  const BackendPerRank dev(n, 0);  // all on device 0
  const std::vector<size_t> counts = {1001, size_t{1} << 20, 7, 0};
  const std::vector<test::Build> builds = {
      [](int r, size_t c) { return ring_allreduce_schedule(n, r, c, 4, pipeline_chunk_elems(256 << 10, 2, (c + n - 1) / n, 4)); },
      [](int r, size_t c) { return recursive_doubling_allreduce_schedule(n, r, c, 4, pipeline_chunk_elems(256 << 10, 2, c, 4)); }};
  for (size_t b = 0; b < builds.size(); ++b)
    for (Wire wire : {Wire::Exact, Wire::F16, Wire::BF16}) {
      auto on_host = test::random_inputs(n, counts, 5 + b);
      auto on_device = on_host;
      const std::vector<std::string> ok(n);
      ASSERT_EQ(test::run_ranks(n, 2, counts, builds[b], on_host, wire), ok);
      ASSERT_EQ(test::run_ranks(n, 2, counts, builds[b], on_device, wire, {}, dev.memory_of()), ok) << "schedule " << b << ", " << wire_name(wire);
      for (size_t k = 0; k < counts.size(); ++k)
        for (int r = 0; r < n; ++r)
          ASSERT_TRUE(same_floats(on_device[k][r].data(), on_host[k][r].data(), counts[k])) << "schedule " << b << ", " << wire_name(wire) << ", rank " << r;
    }
}

TEST_F(CudaMemory, DivideMatchesTheHost) {
  CudaBackend dev(0);
  std::mt19937_64 rng(113);
  auto check = [&](auto zero, DType t) {
    using T = decltype(zero);
    for (size_t n : kSizes) {
      std::vector<T> want = testref::random_values<T>(n, rng), got(n);
      DeviceBuffer d(n * sizeof(T));
      upload(d.get(), want.data(), n * sizeof(T));
      dev.divide(d.get(), n, t, 6);
      dev.synchronize();
      download(got.data(), d.get(), n * sizeof(T));
      host_backend().divide(want.data(), n, t, 6);
      if constexpr (std::is_same_v<T, float>) ASSERT_TRUE(same_floats(got.data(), want.data(), n)) << "n " << n;
      else ASSERT_EQ(std::memcmp(got.data(), want.data(), n * sizeof(T)), 0) << dtype_name(t) << ", n " << n;
    }
  };
  check(0.f, DType::F32);
  check(0.0, DType::F64);
  check(int32_t{0}, DType::I32);
  check(int64_t{0}, DType::I64);
}

// Whole communicators (threads joined over loopback as hosts would be) on device memory.
TEST_F(CudaMemory, CollectivesOnDeviceMemoryGiveHostMemorysBits) {
  const BackendPerRank dev(4, 0);
  test::expect_collectives_give_host_bits(dev.memory_of());
}

// The engine's named tensors on device memory, some ranks' and some tensors' only.
TEST_F(CudaMemory, EngineTensorsOnDeviceMemoryReduceLikeHostTensors) {
  const BackendPerRank dev(4, 0);
  test::expect_engine_reduces_on_every_topology(dev.memory_of());
}

// Runs everywhere: a device that is not there is refused with the reason.
TEST(CudaMemoryWithoutDevice, RefusesADeviceThatDoesNotExist) {
  std::string why;
  const int count = cuda_device_count(&why);
  try {
    CudaBackend dev(count);
    FAIL() << "device " << count << " of " << count << " was accepted";
  } catch (const CommError& e) {
    EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos) << e.what();
    if (count == 0) EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace unicc
