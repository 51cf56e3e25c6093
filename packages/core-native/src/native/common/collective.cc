#include "common/collective.h"

namespace unicc {

const char* coll_name(Coll c) {
  switch (c) {
    case Coll::Allreduce: return "allreduce";
    case Coll::Broadcast: return "broadcast";
    case Coll::Allgather: return "allgather";
    case Coll::Barrier: return "barrier";
  }
  return "unknown";
}

uint32_t Desc::hash() const {
  // FNV-1a over the fields that must agree; seq is compared separately on the wire.
  uint32_t h = 2166136261u;
  auto mix = [&h](uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) { h ^= static_cast<uint8_t>(v >> (8 * i)); h *= 16777619u; }
  };
  mix(coll, 1); mix(dtype, 1); mix(op, 1); mix(static_cast<uint32_t>(root), 4); mix(count, 8);
  return h;
}

std::string Desc::str() const {
  const Coll c = static_cast<Coll>(coll);
  std::string s = std::string(coll_name(c)) + " #" + std::to_string(seq);
  if (c == Coll::Barrier) return s;
  s += " of " + std::to_string(count) + " " + dtype_name(static_cast<DType>(dtype));
  if (c == Coll::Allreduce) s += std::string(" (") + redop_name(static_cast<RedOp>(op)) + ")";
  if (c == Coll::Broadcast) s += " from root " + std::to_string(root);
  return s;
}

}  // namespace unicc
