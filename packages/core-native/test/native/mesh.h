#pragma once
// Ranks as threads of one test, joined by Unix socket pairs (one per lane) under the real TCP
// channel, running schedules through the real executor on random data.
#include <sys/socket.h>

#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "memory/backend.h"
#include "transport/executor.h"
#include "transport/tcp_channel.h"

namespace unicc::test {

// Every pair of ranks joined by `lanes` socket pairs.
struct Mesh {
  std::vector<std::vector<std::vector<std::unique_ptr<Conn>>>> conns;  // [rank][peer][lane]
  Mesh(int n, int lanes) : conns(n) {
    for (auto& per_rank : conns) per_rank.resize(n);
    for (int a = 0; a < n; ++a)
      for (int b = a + 1; b < n; ++b)
        for (int l = 0; l < lanes; ++l) {
          int fds[2];
          if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) throw std::runtime_error("socketpair");
          conns[a][b].push_back(std::make_unique<Conn>(fds[0], b, "rank " + std::to_string(b)));
          conns[b][a].push_back(std::make_unique<Conn>(fds[1], a, "rank " + std::to_string(a)));
        }
  }
  std::vector<std::unique_ptr<TcpChannel>> channels(int r) const {
    std::vector<std::unique_ptr<TcpChannel>> out(conns.size());
    for (size_t p = 0; p < conns.size(); ++p) {
      if (static_cast<int>(p) == r) continue;
      std::vector<Conn*> lanes;
      for (const auto& c : conns[r][p]) lanes.push_back(c.get());
      out[p] = std::make_unique<TcpChannel>(lanes);
    }
    return out;
  }
};

using Build = std::function<Schedule(int rank, size_t count)>;
// Each rank's memory backend: one per rank where a backend is not to be shared between threads
// (a CUDA backend's stream orders one caller's work; a backend keeps one staging).
using MemoryOf = std::function<MemoryBackend&(int rank)>;

// A backend per rank, as each rank's communicator has its own.
template <class Backend>
struct BackendPerRank {
  std::vector<std::unique_ptr<Backend>> ranks;
  template <class... Args>
  explicit BackendPerRank(int n, const Args&... args) {
    for (int r = 0; r < n; ++r) ranks.push_back(std::make_unique<Backend>(args...));
  }
  MemoryOf memory_of() const {
    return [this](int r) -> MemoryBackend& { return *ranks.at(static_cast<size_t>(r)); };
  }
  // The sum over ranks of what `count` says of each one's backend.
  template <class Count>
  size_t total(Count count) const {
    size_t sum = 0;
    for (const auto& b : ranks) sum += count(*b);
    return sum;
  }
};

// bufs[k][r] in `memory`'s own memory for the length of one collective: uploaded before, and
// downloaded after, so that a backend the CPU cannot touch sees only its own pointers.
inline void execute_in(MemoryBackend& memory, const Schedule& s, std::vector<float>& buf,
                       const std::vector<Channel*>& ch, ExecContext cx) {
  cx.memory = &memory;
  if (memory.host_addressable()) return execute(s, reinterpret_cast<char*>(buf.data()), ch, cx);
  const size_t bytes = buf.size() * sizeof(float);
  char* at = static_cast<char*>(memory.allocate(bytes));
  try {
    memory.upload(at, buf.data(), bytes);
    execute(s, at, ch, cx);
    memory.download(buf.data(), at, bytes);
  } catch (...) {
    memory.release(at);
    throw;
  }
  memory.release(at);
}

// Runs, on n threads, one allreduce per count in `counts` (collective #0, #1, ...) over buffers
// in each rank's memory (none given: host memory); returns each rank's error text ("" when it
// succeeded).
inline std::vector<std::string> run_ranks(int n, int lanes, const std::vector<size_t>& counts, const Build& build,
                                          std::vector<std::vector<std::vector<float>>>& bufs, Wire wire = Wire::Exact,
                                          const std::vector<size_t>& count_of_rank1 = {},
                                          const MemoryOf& memory = {}) {
  Mesh mesh(n, lanes);
  std::vector<std::string> errors(n);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      auto owned = mesh.channels(r);
      std::vector<Channel*> ch;
      for (auto& c : owned) ch.push_back(c.get());
      try {
        for (size_t k = 0; k < counts.size(); ++k) {
          const size_t count = r == 1 && !count_of_rank1.empty() ? count_of_rank1[k] : counts[k];
          Desc d;
          d.seq = static_cast<uint32_t>(k);
          d.count = count;
          const ExecContext cx{d, DType::F32, RedOp::Sum, wire, 5000, nullptr, "rank " + std::to_string(r)};
          execute_in(memory ? memory(r) : host_backend(), build(r, count), bufs[k][r], ch, cx);
        }
      } catch (const CommError& e) {
        errors[r] = e.what();
        for (auto& per_peer : mesh.conns[r])
          for (auto& c : per_peer) shutdown(c->fd(), SHUT_RDWR);  // as a failed rank's sockets close
      }
    });
  for (auto& t : threads) t.join();
  return errors;
}

inline std::vector<std::vector<std::vector<float>>> random_inputs(int n, const std::vector<size_t>& counts,
                                                                  uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<std::vector<float>>> b(counts.size());
  for (size_t k = 0; k < counts.size(); ++k)
    for (int r = 0; r < n; ++r) {
      b[k].emplace_back(counts[k]);
      for (float& v : b[k][r]) v = static_cast<float>(static_cast<int>(rng() % 2001) - 1000);
    }
  return b;
}

inline std::vector<float> sum(const std::vector<std::vector<float>>& in) {
  std::vector<float> out = in[0];
  for (size_t r = 1; r < in.size(); ++r)
    for (size_t i = 0; i < out.size(); ++i) out[i] += in[r][i];
  return out;
}

}  // namespace unicc::test
