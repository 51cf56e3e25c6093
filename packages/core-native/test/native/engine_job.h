#pragma once
// The engine over whole communicators (job.h): named tensors, some in a backend's memory and some
// in host memory (differently on each rank), submitted in a different order on each rank, each
// checked against its reduction computed here.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <future>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "job.h"

namespace unicc::test {

struct NamedTensor {
  std::string name;
  DType dtype;
  RedOp op;
  Wire wire;
  size_t count;
};

// Small tensors the engine fuses, and tensors above its in-place limit that travel alone; every
// kind of reduction it groups by. Floats hold small integers, so that a sum's value does not
// depend on its order, nor on the 16-bit wire: a plain loop is the reference.
inline std::vector<NamedTensor> engine_model() {
  const NamedTensor kinds[] = {{"", DType::F32, RedOp::Sum, Wire::Exact, 0},
                               {"", DType::F32, RedOp::Avg, Wire::F16, 0},
                               {"", DType::F32, RedOp::Max, Wire::Exact, 0},
                               {"", DType::I32, RedOp::Sum, Wire::Exact, 0}};
  std::vector<NamedTensor> model;
  std::mt19937_64 rng(11);
  for (int k = 0; k < 16; ++k) {
    NamedTensor t = kinds[k % 4];
    t.name = "layer" + std::to_string(k);
    t.count = k % 5 == 2 ? (kInPlaceBytes / 4) + 70001 + rng() % 1000 : 1 + rng() % 5000;
    model.push_back(t);
  }
  return model;
}

// Rank r's values of tensor t: 4-byte words, random.
inline std::vector<uint32_t> engine_input(const NamedTensor& t, size_t k, int r) {
  std::mt19937_64 rng(1000 * k + static_cast<uint64_t>(r));
  std::vector<uint32_t> v(t.count);
  for (uint32_t& w : v) {
    if (t.dtype == DType::I32) w = static_cast<uint32_t>(rng());
    else {
      const float f = static_cast<float>(static_cast<int>(rng() % 101) - 50);
      std::memcpy(&w, &f, 4);
    }
  }
  return v;
}

inline std::vector<uint32_t> engine_reference(const NamedTensor& t, size_t k, int ranks) {
  std::vector<uint32_t> out = engine_input(t, k, 0);
  for (int r = 1; r < ranks; ++r) {
    const std::vector<uint32_t> in = engine_input(t, k, r);
    for (size_t i = 0; i < out.size(); ++i) {
      if (t.dtype == DType::I32) {
        out[i] += in[i];
        continue;
      }
      float a, b;
      std::memcpy(&a, &out[i], 4);
      std::memcpy(&b, &in[i], 4);
      a = t.op == RedOp::Max ? std::max(a, b) : a + b;
      std::memcpy(&out[i], &a, 4);
    }
  }
  if (t.op == RedOp::Avg)
    for (uint32_t& w : out) {
      float a;
      std::memcpy(&a, &w, 4);
      a /= static_cast<float>(ranks);
      std::memcpy(&w, &a, 4);
    }
  return out;
}

// Runs a model (engine_model(), unless given) through an engine per rank of `job`; tensor k of
// rank r lives in memory(r) where on_backend(k, r), else in host memory.
inline void expect_engine_reduces_each_tensor(Job& job, const MemoryOf& memory,
                                              const std::function<bool(size_t k, int r)>& on_backend,
                                              const std::vector<NamedTensor>& model = engine_model()) {
  const int n = static_cast<int>(job.ranks.size());
  std::vector<std::vector<std::vector<uint32_t>>> host(n);  // [rank][tensor]
  std::vector<std::vector<void*>> where(n);
  for (int r = 0; r < n; ++r)
    for (size_t k = 0; k < model.size(); ++k) {
      host[r].push_back(engine_input(model[k], k, r));
      void* p = host[r][k].data();
      if (on_backend(k, r)) {
        p = memory(r).allocate(model[k].count * 4);
        memory(r).upload(p, host[r][k].data(), model[k].count * 4);
      }
      where[r].push_back(p);
    }
  std::vector<std::unique_ptr<Engine>> engines;
  for (auto& c : job.ranks) engines.push_back(std::make_unique<Engine>(*c, EngineOptions{}));
  std::vector<std::vector<std::promise<std::string>>> done(n);
  for (int r = 0; r < n; ++r) {
    done[r] = std::vector<std::promise<std::string>>(model.size());
    std::vector<size_t> order(model.size());
    for (size_t k = 0; k < order.size(); ++k) order[k] = k;
    std::shuffle(order.begin(), order.end(), std::mt19937_64(static_cast<uint64_t>(r)));
    for (size_t k : order) {
      const NamedTensor& t = model[k];
      NamedRequest req{t.name, t.dtype, t.op, t.wire, where[r][k], t.count,
                       on_backend(k, r) ? &memory(r) : nullptr, {}};
      req.done = [&done, r, k](const std::string& e) { done[r][k].set_value(e); };
      engines[r]->submit(std::move(req));
    }
  }
  for (int r = 0; r < n; ++r)
    for (size_t k = 0; k < model.size(); ++k)
      ASSERT_EQ(done[r][k].get_future().get(), "") << model[k].name << " on rank " << r;
  std::vector<std::future<void>> closing;
  for (auto& e : engines) closing.push_back(std::async(std::launch::async, [&e] { e->shutdown(); }));
  for (auto& c : closing) c.get();
  for (int r = 0; r < n; ++r)
    for (size_t k = 0; k < model.size(); ++k) {
      std::vector<uint32_t> got = host[r][k];
      if (on_backend(k, r)) {
        memory(r).download(got.data(), where[r][k], got.size() * 4);
        memory(r).release(where[r][k]);
      }
      EXPECT_EQ(got, engine_reference(model[k], k, n)) << model[k].name << " on rank " << r;
    }
}

// On every kind of topology (job.h), with each rank's tensors split between the backend and host
// memory, differently on neighbouring ranks.
inline void expect_engine_reduces_on_every_topology(const MemoryOf& memory) {
  on_every_topology([&](Job& job) {
    expect_engine_reduces_each_tensor(job, memory, [](size_t k, int r) { return (k + static_cast<size_t>(r)) % 2 == 0; });
  });
}

}  // namespace unicc::test
