#include "memory/payload.h"

namespace unicc {

namespace {
// A decoded message beside the encoded one in staging, aligned for float32 vector code.
size_t aligned(size_t bytes) { return (bytes + 255) & ~size_t{255}; }
}  // namespace

const char* PayloadCoder::make(Wire w, char* src, size_t bytes, bool round_source, RedOp op, std::vector<char>& stage) {
  const bool host = mem_.host_addressable();
  if (w == Wire::Exact && host) return src;
  const size_t wire_bytes = payload_bytes(w, bytes);
  stage.resize(wire_bytes);
  if (w == Wire::Exact) {
    mem_.download(stage.data(), src, bytes);
    return stage.data();
  }
  char* msg = host ? stage.data() : static_cast<char*>(mem_.staging(wire_bytes));
  const size_t n = bytes / 4;
  mem_.encode16(w, reinterpret_cast<const float*>(src), n, msg);
  if (round_source) mem_.decode16(w, msg, n, reinterpret_cast<float*>(src), false, op);
  if (!host) mem_.download(stage.data(), msg, wire_bytes);
  return stage.data();
}

void PayloadCoder::apply(Wire w, const char* msg, char* dst, size_t bytes, bool reduce_into, bool received_first,
                         DType t, RedOp op) {
  const bool decodes_aside = w != Wire::Exact && reduce_into && received_first;
  if (mem_.host_addressable()) {
    if (decodes_aside) host_decoded_.resize(bytes);
    return fold(w, msg, dst, bytes, reduce_into, received_first, t, op, host_decoded_.data());
  }
  if (w == Wire::Exact && !reduce_into) return mem_.upload(dst, msg, bytes);
  const size_t wire_bytes = payload_bytes(w, bytes);
  char* in = static_cast<char*>(mem_.staging(aligned(wire_bytes) + (decodes_aside ? bytes : 0)));
  mem_.upload(in, msg, wire_bytes);
  fold(w, in, dst, bytes, reduce_into, received_first, t, op, in + aligned(wire_bytes));
}

// msg and dst in the backend's memory; decoded: room for `bytes` there, used when the message
// must be decoded before it is folded in the received-first order.
void PayloadCoder::fold(Wire w, const char* msg, char* dst, size_t bytes, bool reduce_into, bool received_first,
                        DType t, RedOp op, char* decoded) {
  if (w != Wire::Exact && !(reduce_into && received_first)) {
    mem_.decode16(w, msg, bytes / 4, reinterpret_cast<float*>(dst), reduce_into, op);
    return;
  }
  if (w != Wire::Exact) {
    mem_.decode16(w, msg, bytes / 4, reinterpret_cast<float*>(decoded), false, op);
    msg = decoded;
  }
  if (!reduce_into) {
    if (msg != dst) mem_.copy(dst, msg, bytes);
  }
  else if (received_first) mem_.reduce(dst, msg, dst, bytes / dtype_size(t), t, op);
  else mem_.reduce(dst, dst, msg, bytes / dtype_size(t), t, op);
}

}  // namespace unicc
