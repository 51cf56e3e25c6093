#pragma once
#include <cstddef>
#include <vector>

#include "memory/backend.h"
#include "reduce/reduce.h"
#include "reduce/wire16.h"

namespace unicc {

// A tensor of a batch as fusion sees it.
struct FusionInput {
  DType dtype;
  RedOp op;
  Wire wire;
  size_t bytes;
};

// A tensor this large reduces about as fast alone as fused, and alone it needs no copies.
constexpr size_t kInPlaceBytes = 1 << 20;

// Groups a batch (given in the order every rank agreed) into allreduces: by how the values are
// reduced (dtype, op, wire; in that order), then in batch order; tensors of kInPlaceBytes or more
// alone, the others packed into groups of at most `fusion_bytes` (0: every tensor alone). Returns
// the groups as indices into `batch`, in the order to reduce them; the same on every rank.
std::vector<std::vector<size_t>> plan_fusion(const std::vector<FusionInput>& batch, size_t fusion_bytes);

// Where a tensor's values are.
struct Span {
  void* data;
  size_t bytes;
  MemoryBackend* memory = nullptr;  // whose memory data is in (a GPU's); null: this process's host memory
};

// The host buffer fused groups are packed into: kept between batches, so it is allocated once.
// A fused tensor in memory the CPU cannot touch is copied there from its device; a tensor alone
// is reduced where it lives. Which tensors are fused is decided without looking at memory
// (plan_fusion), so ranks whose tensors live in different memories run the same collectives.
class FusionBuffer {
 public:
  // Copies each group of several tensors into the buffer, one after another; returns where each
  // group is to be reduced: there for a fused group, in place for a tensor alone.
  std::vector<void*> pack(const std::vector<std::vector<Span>>& groups);
  // Copies the fused groups' values back to their tensors (after they were reduced in the
  // buffer); returns once they are all there, device memory included.
  void unpack(const std::vector<std::vector<Span>>& groups) const;

 private:
  std::vector<char> buf_;
  std::vector<size_t> at_;  // by group: its place in buf_
};

}  // namespace unicc
