#pragma once
#include <cstddef>
#include <vector>

#include "reduce/reduce.h"
#include "reduce/wire16.h"

namespace unicc {

// How a schedule's bytes become a message and back, the same for every executor (sockets, the
// in-memory one of the tests). A 16-bit wire applies to float32 only; callers pass Wire::Exact
// for other types.
inline size_t payload_bytes(Wire w, size_t bytes) { return w == Wire::Exact ? bytes : wire16_bytes(bytes / 4); }

// The message for `bytes` at src: src itself when exact, else encoded into stage (and, with
// round_source, src rounded through the wire in place so its owner keeps what others receive).
const char* make_payload(Wire w, char* src, size_t bytes, bool round_source, RedOp op, std::vector<char>& stage);

// Applies a received message to `bytes` at dst: a copy, or a reduction (dst op message, or
// message op dst when received_first). scratch holds a decoded message when it must.
void apply_payload(Wire w, const char* msg, char* dst, size_t bytes, bool reduce_into, bool received_first, DType t,
                   RedOp op, std::vector<char>& scratch);

}  // namespace unicc
