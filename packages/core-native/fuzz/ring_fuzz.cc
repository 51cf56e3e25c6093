// libFuzzer harness: submission entries from a client's command ring (binding/ring_format.h).
// The input is a buffer size (8 bytes) followed by entries; each is decoded as the bridge's ring
// thread does and checked against a buffer of that size, and the verdicts against the entry's
// own fields: an accepted entry names a known collective, dtype, op and compression, and the span
// it names lies inside the buffer, aligned to its element. An entry on buffer 0 (the client's own
// memory) has its span checked as the bridge checks it before the collective starts
// (check_client_span, by cross-memory attach to this very process): its offset counts from the
// start of a 64 KiB area between two inaccessible ones, and a span is accepted exactly when both
// its ends lie inside the area.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "binding/ring_format.h"
#include "memory/user_buffer.h"

namespace {
size_t elem_of(uint8_t dtype) { return dtype == 0 || dtype == 2 ? 4 : 8; }

constexpr size_t kArea = 64 << 10;

// The area, with kArea of PROT_NONE on either side.
char* client_area() {
  static char* area = [] {
    char* m = static_cast<char*>(mmap(nullptr, 3 * kArea, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (m == MAP_FAILED || mprotect(m + kArea, kArea, PROT_READ | PROT_WRITE)) std::abort();
    return m + kArea;
  }();
  return area;
}

void check_client_memory(const unicc::ring::Submission& s, size_t elem) {
  // Spans whose last byte lies past the far guard could end in any mapping: they prove nothing.
  if (s.count > (2 * kArea) / elem || s.offset > 2 * kArea || s.offset + s.count * elem > 2 * kArea) return;
  const size_t n = s.count * elem;
  const uintptr_t at = reinterpret_cast<uintptr_t>(client_area()) + s.offset;
  const bool accepted = unicc::check_client_span(getpid(), at, n).empty();
  const bool inside = n == 0 || s.offset + n <= kArea;
  if (accepted != inside) std::abort();
}
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
    if (s.buf == kClientMemory) check_client_memory(s, elem);
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
