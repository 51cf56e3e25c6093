#pragma once
#include <cstdint>
#include <string>

#include "reduce/reduce.h"

namespace unicc {

enum class Coll : uint8_t { Allreduce = 0, Broadcast = 1, Allgather = 2, Barrier = 3 };

// What one rank asked for in one collective. Ranks compare these before moving data so that a
// mismatch is an error on every rank instead of garbage or a hang.
struct Desc {
  uint32_t seq = 0;  // how many collectives this communicator ran before this one
  uint8_t coll = 0;
  uint8_t dtype = 0;
  uint8_t op = 0;
  uint8_t reserved = 0;
  int32_t root = 0;
  uint32_t reserved2 = 0;
  uint64_t count = 0;  // elements per rank (allgather: contributed by each rank)

  bool operator==(const Desc& o) const {
    return seq == o.seq && coll == o.coll && dtype == o.dtype && op == o.op && root == o.root &&
           count == o.count;
  }
  bool operator!=(const Desc& o) const { return !(*this == o); }
  uint32_t hash() const;
  std::string str() const;
};

const char* coll_name(Coll c);

}  // namespace unicc
