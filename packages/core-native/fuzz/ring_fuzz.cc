// libFuzzer harness: submission entries from a client's command ring (binding/ring_format.h).
// The input is a buffer size (8 bytes) followed by entries; each is decoded as the bridge's ring
// thread does and checked against a buffer of that size, and the verdicts against the entry's
// own fields: an accepted entry names a known collective, dtype, op and compression, and the span
// it names lies inside the buffer, aligned to its element.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "binding/ring_format.h"

namespace {
size_t elem_of(uint8_t dtype) { return dtype == 0 || dtype == 2 ? 4 : 8; }
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace unicc::ring;
  if (size < 8) return 0;
  uint64_t bytes;
  std::memcpy(&bytes, data, 8);
  for (size_t off = 8; off < size; off += kSubmissionBytes) {
    uint8_t entry[kSubmissionBytes] = {};
    std::memcpy(entry, data + off, size - off < kSubmissionBytes ? size - off : kSubmissionBytes);
    Submission s;
    if (!decode_submission(entry, s).empty()) continue;
    if (s.coll > 3 || s.dtype > 3 || s.op > 4 || (s.wire > 2 && s.wire != kDefaultWire) || s.name.size() > kNameMax) std::abort();
    if (!s.name.empty() && s.coll != 0) std::abort();
    const size_t elem = elem_of(s.dtype);
    if (!span_fits(s.offset, s.count, elem, bytes)) continue;
    const unsigned __int128 end = static_cast<unsigned __int128>(s.count) * elem + s.offset;
    if (end > bytes || s.offset % elem) std::abort();
    uint8_t done[kCompletionBytes];
    encode_completion(done, s.req, s.name);  // any text fits, cut to kErrorMax
    uint32_t n;
    std::memcpy(&n, done + 8, 4);
    if (n > kErrorMax) std::abort();
  }
  return 0;
}
