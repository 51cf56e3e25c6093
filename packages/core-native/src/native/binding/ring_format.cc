#include "binding/ring_format.h"

#include <cstring>

namespace unicc::ring {

namespace {
template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
}  // namespace

std::string code_error(unsigned coll, unsigned dtype, unsigned op) {
  if (coll > 3) return "unknown collective " + std::to_string(coll) + " (0..3)";
  if (dtype > 3) return "unknown dtype " + std::to_string(dtype) + " (f32, f64, i32, i64: 0..3)";
  if (op > 4) return "unknown reduce op " + std::to_string(op) + " (0..4)";
  return "";
}

std::string decode_submission(const uint8_t* e, Submission& s) {
  s.req = load<uint64_t>(e);
  s.buf = load<uint64_t>(e + 8);
  s.out = load<uint64_t>(e + 16);
  s.offset = load<uint64_t>(e + 24);
  s.count = load<uint64_t>(e + 32);
  s.out_offset = load<uint64_t>(e + 40);
  s.root = load<int32_t>(e + 48);
  s.coll = e[52];
  s.dtype = e[53];
  s.op = e[54];
  s.wire = e[55];
  const uint16_t name_len = load<uint16_t>(e + 56);
  if (std::string bad = code_error(s.coll, s.dtype, s.op); !bad.empty()) return bad;
  if (s.wire > 2 && s.wire != kDefaultWire) return "unknown compression " + std::to_string(s.wire);
  if (name_len > kNameMax) return "name of " + std::to_string(name_len) + " bytes (at most " + std::to_string(kNameMax) + ")";
  if (name_len && s.coll != 0) return "only an allreduce may be named";
  s.name.assign(reinterpret_cast<const char*>(e + kNameAt), name_len);
  return "";
}

bool span_fits(uint64_t offset, uint64_t count, size_t elem, size_t bytes) {
  return offset % elem == 0 && offset <= bytes && count <= (bytes - offset) / elem;
}

std::string span_error(uint64_t offset, uint64_t count, uint8_t dtype, uint64_t id, size_t bytes) {
  static const char* const names[] = {"f32", "f64", "i32", "i64"};
  return std::to_string(count) + " " + (dtype < 4 ? names[dtype] : "?") + " at byte " + std::to_string(offset) +
         " do not fit buffer " + std::to_string(id) + " of " + std::to_string(bytes) + " bytes";
}

void encode_completion(uint8_t* e, uint64_t req, const std::string& error) {
  const uint32_t n = static_cast<uint32_t>(error.size() < kErrorMax ? error.size() : kErrorMax);
  std::memcpy(e, &req, 8);
  std::memcpy(e + 8, &n, 4);
  std::memcpy(e + kErrorAt, error.data(), n);
}

}  // namespace unicc::ring
