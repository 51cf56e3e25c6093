#include "reduce/payload.h"

#include <cstring>

namespace unicc {

const char* make_payload(Wire w, char* src, size_t bytes, bool round_source, RedOp op, std::vector<char>& stage) {
  if (w == Wire::Exact) return src;
  const size_t n = bytes / 4;
  stage.resize(wire16_bytes(n));
  wire16_encode(w, reinterpret_cast<const float*>(src), n, stage.data());
  if (round_source) wire16_decode(w, stage.data(), n, reinterpret_cast<float*>(src), false, op);
  return stage.data();
}

void apply_payload(Wire w, const char* msg, char* dst, size_t bytes, bool reduce_into, bool received_first, DType t,
                   RedOp op, std::vector<char>& scratch) {
  if (w != Wire::Exact && !(reduce_into && received_first)) {
    wire16_decode(w, msg, bytes / 4, reinterpret_cast<float*>(dst), reduce_into, op);
    return;
  }
  if (w != Wire::Exact) {  // decode first, then fold in the received-first order
    scratch.resize(bytes);
    wire16_decode(w, msg, bytes / 4, reinterpret_cast<float*>(scratch.data()), false, op);
    msg = scratch.data();
  }
  if (!reduce_into) {
    if (msg != dst) std::memcpy(dst, msg, bytes);
  }
  else if (received_first) reduce(dst, msg, dst, bytes / dtype_size(t), t, op);
  else reduce(dst, dst, msg, bytes / dtype_size(t), t, op);
}

}  // namespace unicc
