#include "engine/negotiation.h"

#include <algorithm>
#include <cstring>

#include "common/error.h"

namespace unicc {

namespace {

// A description: name length (2 bytes), name, dtype, op, wire, a spare byte, count (8 bytes).
constexpr size_t kFixedDescribedBytes = 2 + 4 + 8;

void put(std::vector<char>& out, const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  out.insert(out.end(), c, c + n);
}

}  // namespace

std::string TensorMeta::str() const {
  std::string s = std::string(dtype_name(dtype)) + "[" + std::to_string(count) + "] (" + redop_name(op);
  if (wire != Wire::Exact) s += std::string(", ") + wire_name(wire);
  return s + ")";
}

double Round::report(int rank, int i) const {
  double x;
  std::memcpy(&x, &words_[rank][kHeader + i], 8);
  return x;
}

std::vector<int64_t> Negotiation::words(int64_t flags, const std::vector<double>& reports, const std::vector<int>& held,
                                        size_t described_bytes) const {
  std::vector<int64_t> w(word_count(), 0);
  w[Round::kFlags] = flags;
  w[Round::kDescribedBytes] = static_cast<int64_t>(described_bytes);
  std::memcpy(&w[Round::kHeader], reports.data(), 8 * static_cast<size_t>(reports_));
  for (int id : held) w[Round::kHeader + reports_ + id / 64] |= int64_t{1} << (id % 64);
  return w;
}

std::vector<char> Negotiation::describe(const std::vector<TensorMeta>& metas) {
  std::vector<char> out;
  for (const TensorMeta& m : metas) {
    const uint16_t len = static_cast<uint16_t>(m.name.size());
    const uint8_t kind[4] = {static_cast<uint8_t>(m.dtype), static_cast<uint8_t>(m.op), static_cast<uint8_t>(m.wire), 0};
    put(out, &len, 2);
    put(out, m.name.data(), len);
    put(out, kind, 4);
    put(out, &m.count, 8);
  }
  return out;
}

Round Negotiation::read_words(const std::vector<int64_t>& all) const {
  const size_t W = word_count();
  Round round;
  round.reports_ = reports_;
  round.ids_ = static_cast<int>(agreed_.size());
  for (int r = 0; r < size_; ++r) round.words_.emplace_back(all.begin() + r * W, all.begin() + (r + 1) * W);
  round.described_.resize(size_);
  return round;
}

size_t Negotiation::max_described_bytes(const Round& round) const {
  size_t most = 0;
  for (int r = 0; r < size_; ++r) most = std::max(most, round.described_bytes(r));
  return most;
}

void Negotiation::read_described(Round& round, const char* all, size_t stride) const {
  for (int r = 0; r < size_; ++r) {
    const char* p = all + r * stride;
    const char* end = p + std::min(stride, round.described_bytes(r));
    while (p < end) {
      uint16_t len;
      if (p + 2 > end) throw CommError("corrupt negotiation message from rank " + std::to_string(r));
      std::memcpy(&len, p, 2);
      if (p + kFixedDescribedBytes + len > end) throw CommError("corrupt negotiation message from rank " + std::to_string(r));
      TensorMeta m;
      m.name.assign(p + 2, len);
      const uint8_t* kind = reinterpret_cast<const uint8_t*>(p + 2 + len);
      m.dtype = static_cast<DType>(kind[0]);
      m.op = static_cast<RedOp>(kind[1]);
      m.wire = static_cast<Wire>(kind[2]);
      std::memcpy(&m.count, p + 2 + len + 4, 8);
      p += kFixedDescribedBytes + len;
      round.described_[r].push_back(std::move(m));
    }
  }
}

Negotiation::Decision Negotiation::decide(const Round& round) {
  Decision d;
  for (int id = 0; id < round.ids_; ++id) {
    bool all = true;
    for (int r = 0; r < size_ && all; ++r) all = round.holds(r, id);
    if (all) d.ready.push_back(id);
  }
  std::map<std::string, std::vector<std::pair<int, TensorMeta>>> by_name;
  for (int r = 0; r < size_; ++r)
    for (const TensorMeta& m : round.described(r)) by_name[m.name].push_back({r, m});
  for (auto& [name, holders] : by_name) {
    // Decide only once every rank holds the name, so that every rank has it to fail or finish.
    const int known = id_of(name);
    int holding = static_cast<int>(holders.size());
    if (known >= 0)
      for (int r = 0; r < size_; ++r) holding += round.holds(r, known);
    if (holding < size_) continue;
    // An agreed name is described again when a rank changed it: fine if every rank changed it the
    // same way (a model rebuilt, DDP's buckets re-formed), a conflict if some still hold the old.
    bool same = known < 0 || static_cast<int>(holders.size()) == size_;
    for (auto& h : holders) same = same && h.second == holders[0].second;
    if (same && known >= 0) {
      agreed_[known] = holders[0].second;
      d.ready.push_back(known);
      continue;
    }
    if (!same) {
      std::string e = "'" + name + "' was submitted differently on different ranks:";
      if (known >= 0) e += " the others as agreed earlier, " + agreed_[known].str() + ";";
      for (auto& h : holders) e += " rank " + std::to_string(h.first) + ": " + h.second.str() + ";";
      e += " every rank must submit a name with the same length, type, op and compression";
      d.errors[name] = e;
      continue;
    }
    const int id = static_cast<int>(agreed_.size());
    agreed_.push_back(holders[0].second);
    id_of_[name] = id;
    d.added.push_back(id);
    d.ready.push_back(id);
  }
  // A conflicting name may also be held through its agreed id on other ranks: drop those too.
  d.ready.erase(std::remove_if(d.ready.begin(), d.ready.end(), [&](int id) { return d.errors.count(agreed_[id].name) > 0; }),
                d.ready.end());
  return d;
}

std::map<std::string, std::vector<int>> Negotiation::partly_held(const Round& round) const {
  std::map<std::string, std::vector<int>> holders;
  for (int r = 0; r < size_; ++r) {
    for (int id = 0; id < round.ids_; ++id)
      if (round.holds(r, id)) holders[agreed_[id].name].push_back(r);
    for (const TensorMeta& m : round.described(r)) holders[m.name].push_back(r);
  }
  for (auto it = holders.begin(); it != holders.end();)
    it = static_cast<int>(it->second.size()) == size_ ? holders.erase(it) : std::next(it);
  return holders;
}

int Negotiation::id_of(const std::string& name) const {
  const auto it = id_of_.find(name);
  return it == id_of_.end() ? -1 : it->second;
}

}  // namespace unicc
