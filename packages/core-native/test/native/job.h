#pragma once
// Communicators of one job as threads of a test on loopback, formed through a store in memory,
// each rank given a host identity of its own where it should act as a host of its own, and the
// check that collectives on a backend's memory end with the bits host memory gives.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <future>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "communicator.h"
#include "memory_store.h"
#include "mesh.h"
#include "world/formation.h"

namespace unicc::test {

// Forms each rank's lanes (lanes[r]) into one world through a store in memory, every rank on a
// thread of its own; each rank's error ("" where it formed). hosts[r]: rank r's host identity
// (none: probed). Ranks in `absent` never start.
inline std::vector<std::string> form_ranks(const std::vector<std::vector<Communicator*>>& lanes,
                                           const std::vector<std::string>& hosts, const std::string& probe_prefix,
                                           int timeout_ms, const std::vector<int>& absent = {}) {
  MemoryStore store;
  std::vector<std::future<std::string>> forming;
  for (int r = 0; r < static_cast<int>(lanes.size()); ++r) {
    if (std::find(absent.begin(), absent.end(), r) != absent.end()) continue;
    forming.push_back(std::async(std::launch::async, [&, r]() -> std::string {
      try {
        form_world(store, {"w/", "127.0.0.1", hosts.empty() ? "" : hosts[r], probe_prefix, timeout_ms}, lanes[r]);
        return "";
      } catch (const std::exception& e) {
        return e.what();
      }
    }));
  }
  std::vector<std::string> errors;
  for (auto& f : forming) errors.push_back(f.get());
  return errors;
}

// Every rank submits op_of(rank) to comms[rank]; each one's error text ("" when it succeeded).
inline std::vector<std::string> run_on(const std::vector<Communicator*>& comms, const std::function<Op(int rank)>& op_of) {
  std::vector<std::promise<std::string>> done(comms.size());
  for (size_t r = 0; r < comms.size(); ++r) {
    Op op = op_of(static_cast<int>(r));
    op.done = [&done, r](const std::string& error) { done[r].set_value(error); };
    comms[r]->submit(std::move(op));
  }
  std::vector<std::string> errors;
  for (auto& d : done) errors.push_back(d.get_future().get());
  return errors;
}

struct Job {
  std::vector<std::unique_ptr<Communicator>> ranks;
  // hosts[r]: rank r's host identity.
  explicit Job(const std::vector<std::string>& hosts, bool hierarchical = true) {
    const int n = static_cast<int>(hosts.size());
    const std::string job_id = "communicator-test-" + std::to_string(getpid()) + "-" + std::to_string(serial++);
    for (int r = 0; r < n; ++r) {
      Options o;
      o.rank = r;
      o.size = n;
      o.job_id = job_id;
      o.token = "communicator-test";
      o.timeout_ms = 10000;
      o.hierarchical = hierarchical;
      o.streams = 2;
      ranks.push_back(std::make_unique<Communicator>(o));
    }
    std::vector<std::vector<Communicator*>> lanes;
    for (auto& c : ranks) lanes.push_back({c.get()});
    for (const std::string& e : form_ranks(lanes, hosts, "", 10000))
      if (!e.empty()) throw std::runtime_error("forming the test's job: " + e);
  }
  std::vector<std::string> run(const std::function<Op(int rank)>& op_of) {
    std::vector<Communicator*> comms;
    for (auto& c : ranks) comms.push_back(c.get());
    return run_on(comms, op_of);
  }
  static inline int serial = 0;
};

inline std::vector<float> random_floats(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.f, 3.f);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

// Each rank's buffer in its backend's memory, filled from `host`; read back into it by `back`.
struct Buffers {
  MemoryOf memory;
  std::vector<char*> at;
  Buffers(const MemoryOf& m, std::vector<std::vector<float>>& host) : memory(m) {
    for (size_t r = 0; r < host.size(); ++r) {
      at.push_back(static_cast<char*>(memory(static_cast<int>(r)).allocate(host[r].size() * 4)));
      memory(static_cast<int>(r)).upload(at.back(), host[r].data(), host[r].size() * 4);
    }
  }
  ~Buffers() {
    for (size_t r = 0; r < at.size(); ++r) memory(static_cast<int>(r)).release(at[r]);
  }
  void back(std::vector<std::vector<float>>& host) const {
    for (size_t r = 0; r < host.size(); ++r) memory(static_cast<int>(r)).download(host[r].data(), at[r], host[r].size() * 4);
  }
};

// One kind of collective on host memory and on each rank's backend's, from the same random
// inputs: the same bits, in every rank's buffer and (allgather) output.
inline void expect_same_bits(Job& job, const MemoryOf& memory, Coll coll, RedOp red, Wire wire, size_t count,
                             size_t out_count) {
  const size_t n = job.ranks.size();
  std::vector<std::vector<float>> in(n), out(n, std::vector<float>(out_count));
  for (size_t r = 0; r < n; ++r) in[r] = random_floats(count, 100 * static_cast<uint64_t>(coll) + r);
  auto backend_in = in, backend_out = out;
  auto on_host = [&](int r) {
    Op op;
    op.coll = coll;
    op.op = red;
    op.wire = wire;
    op.count = count;
    op.root = 1;
    op.buf = in[r].data();
    op.out = out[r].data();
    return op;
  };
  const std::vector<std::string> ok(n);
  ASSERT_EQ(job.run(on_host), ok);
  const Buffers backend_ins(memory, backend_in), backend_outs(memory, backend_out);
  ASSERT_EQ(job.run([&](int r) {
    Op op = on_host(r);
    op.memory = &memory(r);
    op.buf = backend_ins.at[r];
    op.out = backend_outs.at[r];
    return op;
  }), ok);
  backend_ins.back(backend_in);
  backend_outs.back(backend_out);
  EXPECT_EQ(backend_in, in) << coll_name(coll) << " " << redop_name(red) << " " << wire_name(wire) << " on " << memory(0).name();
  EXPECT_EQ(backend_out, out) << coll_name(coll) << " on " << memory(0).name();
}

// Runs check on a job of every kind of topology: ranks on hosts of their own, two hosts of two
// ranks on the flat ring and hierarchically (shared memory inside), and one host.
inline void on_every_topology(const std::function<void(Job&)>& check) {
  const std::vector<std::pair<std::vector<std::string>, bool>> jobs = {
      {{"host-a", "host-b", "host-c"}, true},
      {{"host-a", "host-a", "host-b", "host-b"}, false},
      {{"host-a", "host-a", "host-b", "host-b"}, true},
      {{"host-a", "host-a", "host-a"}, true}};
  for (const auto& [hosts, hierarchical] : jobs) {
    Job job(hosts, hierarchical);
    SCOPED_TRACE(std::to_string(hosts.size()) + " ranks on " + std::to_string(job.ranks[0]->topology().num_hosts) +
                 " hosts" + (job.ranks[0]->topology().flat_ring ? ", flat ring" : ""));
    check(job);
  }
}

// Each collective, exact and fp16, sums and averages, large and small, on every kind of topology.
inline void expect_collectives_give_host_bits(const MemoryOf& memory) {
  on_every_topology([&](Job& job) {
    const size_t count = 300007, n = job.ranks.size();
    for (Wire wire : {Wire::Exact, Wire::F16})
      for (RedOp red : {RedOp::Sum, RedOp::Avg}) expect_same_bits(job, memory, Coll::Allreduce, red, wire, count, 0);
    expect_same_bits(job, memory, Coll::Allreduce, RedOp::Max, Wire::Exact, 9, 0);  // small: one round, or recursive doubling
    expect_same_bits(job, memory, Coll::Broadcast, RedOp::Sum, Wire::Exact, count, 0);
    expect_same_bits(job, memory, Coll::Allgather, RedOp::Sum, Wire::Exact, 1001, 1001 * n);
  });
}
}  // namespace unicc::test
