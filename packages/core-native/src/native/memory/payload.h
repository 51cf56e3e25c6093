#pragma once
#include <cstddef>
#include <vector>

#include "memory/backend.h"

namespace unicc {

// How a schedule's bytes become a message and back, the same for every executor (sockets, the
// in-memory one of the tests). A 16-bit wire applies to float32 only; callers pass Wire::Exact
// for other types.
inline size_t payload_bytes(Wire w, size_t bytes) { return w == Wire::Exact ? bytes : wire16_bytes(bytes / 4); }

// Messages between buffers in one backend's memory and the host memory a channel carries. Where
// the CPU cannot touch the buffers, coding and reduction stay in the backend (a 16-bit message
// crosses to the host already halved) and only messages are downloaded and uploaded, through
// the backend's staging.
class PayloadCoder {
 public:
  explicit PayloadCoder(MemoryBackend& memory) : mem_(memory) {}

  // The message for `bytes` at src: src itself when exact in host memory, else made in stage
  // (and, with round_source, src rounded through the wire in place so its owner keeps what
  // others receive).
  const char* make(Wire w, char* src, size_t bytes, bool round_source, RedOp op, std::vector<char>& stage);
  // Applies a received message (host memory) to `bytes` at dst: a copy, or a reduction (dst op
  // message, or message op dst when received_first).
  void apply(Wire w, const char* msg, char* dst, size_t bytes, bool reduce_into, bool received_first, DType t, RedOp op);

 private:
  void fold(Wire w, const char* msg, char* dst, size_t bytes, bool reduce_into, bool received_first, DType t, RedOp op,
            char* decoded);

  MemoryBackend& mem_;
  std::vector<char> host_decoded_;
};

}  // namespace unicc
