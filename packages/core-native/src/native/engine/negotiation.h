#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "reduce/reduce.h"
#include "reduce/wire16.h"

namespace unicc {

// How a named tensor is reduced; every rank must submit a name the same way.
struct TensorMeta {
  std::string name;
  DType dtype = DType::F32;
  RedOp op = RedOp::Sum;
  Wire wire = Wire::Exact;
  uint64_t count = 0;
  bool operator==(const TensorMeta& o) const {
    return dtype == o.dtype && op == o.op && wire == o.wire && count == o.count;
  }
  std::string str() const;  // e.g. "float32[10] (sum, fp16)"
};

// What every rank said in one round: its flags, its reports (numbers the engine passes along, the
// same count from every rank), which agreed ids it holds, and the names it holds that have no id.
class Round {
 public:
  int64_t flags(int rank) const { return words_[rank][kFlags]; }
  double report(int rank, int i) const;
  // Ids handed out this round are held by nobody yet (their holders described them).
  bool holds(int rank, int id) const {
    return id < ids_ && (words_[rank][kHeader + reports_ + id / 64] >> (id % 64)) & 1;
  }
  const std::vector<TensorMeta>& described(int rank) const { return described_[rank]; }
  size_t described_bytes(int rank) const { return static_cast<size_t>(words_[rank][kDescribedBytes]); }

 private:
  friend class Negotiation;
  enum { kFlags = 0, kDescribedBytes = 1, kHeader = 2 };
  int reports_ = 0, ids_ = 0;                       // ids agreed before this round
  std::vector<std::vector<int64_t>> words_;        // per rank: header, reports, bitmap of ids
  std::vector<std::vector<TensorMeta>> described_;  // per rank
};

// The ranks' agreement on which named tensors to reduce now, without a coordinator. Each round
// every rank sends a fixed-size message (flags, reports, a bitmap over the names agreed earlier)
// and, for names without an id yet, their full descriptions; from everybody's messages every rank
// decides alike. Holds the table of agreed names (an id per name), the same on every rank.
// No communication here: the engine carries the messages (two allgathers per round).
class Negotiation {
 public:
  Negotiation(int size, int reports) : size_(size), reports_(reports) {}

  // This rank's fixed-size message: `held` are agreed ids it holds as agreed.
  std::vector<int64_t> words(int64_t flags, const std::vector<double>& reports, const std::vector<int>& held,
                             size_t described_bytes) const;
  size_t word_count() const { return Round::kHeader + reports_ + (agreed_.size() + 63) / 64; }
  static std::vector<char> describe(const std::vector<TensorMeta>& metas);
  // Every rank's words, rank after rank (an allgather of words()).
  Round read_words(const std::vector<int64_t>& all) const;
  size_t max_described_bytes(const Round& round) const;
  // Every rank's descriptions, `stride` bytes apart (an allgather of describe(), padded).
  void read_described(Round& round, const char* all, size_t stride) const;

  struct Decision {
    std::vector<int> ready;                     // ids every rank holds, to reduce now
    std::vector<int> added;                     // ids handed out this round (in ready too)
    std::map<std::string, std::string> errors;  // names submitted differently: why
  };
  // Identical on every rank: agreed names everybody holds, then names everybody described the
  // same way (new ones get ids in name order), and conflicts. Updates the table.
  Decision decide(const Round& round);

  // Names some ranks hold and others do not, with the ranks that hold them (ascending).
  std::map<std::string, std::vector<int>> partly_held(const Round& round) const;

  int id_of(const std::string& name) const;  // -1: none
  const TensorMeta& agreed(int id) const { return agreed_[id]; }
  size_t agreed_count() const { return agreed_.size(); }

 private:
  int size_, reports_;
  std::vector<TensorMeta> agreed_;  // by id
  std::map<std::string, int> id_of_;
};

}  // namespace unicc
