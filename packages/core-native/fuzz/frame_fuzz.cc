// libFuzzer harness: frame headers from a ring neighbour. The input is what the receiver expects
// (seq, hash, number of chunks: 12 bytes) followed by headers as they arrive; each header is
// checked with the receiver's own check_frame_header, and its verdict against the header's fields
// (above all: a data verdict promises a chunk index the receiver may look up).
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "transport/tcp.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 12) return 0;
  uint32_t want[3];
  std::memcpy(want, data, sizeof(want));
  const size_t chunks = want[2] % 4096;  // a schedule's chunk count, kept small enough to allocate
  std::vector<uint32_t> chunk_len(chunks, 0);
  for (size_t off = 12; off + sizeof(unicc::FrameHeader) <= size; off += sizeof(unicc::FrameHeader)) {
    unicc::FrameHeader h;
    std::memcpy(&h, data + off, sizeof(h));
    switch (unicc::check_frame_header(h, want[0], want[1], chunks)) {
      case unicc::FrameCheck::kData:
        if (h.type != unicc::kFrameData || h.seq != want[0] || h.hash != want[1]) std::abort();
        (void)chunk_len.at(h.index);  // out of range throws, and an uncaught throw is a crash
        break;
      case unicc::FrameCheck::kAbort:
        if (h.type != unicc::kFrameAbort) std::abort();
        break;
      case unicc::FrameCheck::kCorrupt:
        if (h.type == unicc::kFrameData || h.type == unicc::kFrameAbort) std::abort();
        break;
      case unicc::FrameCheck::kMismatch:
        if (h.type != unicc::kFrameData) std::abort();
        break;
    }
  }
  return 0;
}
