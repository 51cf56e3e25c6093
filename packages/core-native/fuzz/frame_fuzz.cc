// libFuzzer harness: frame headers from a ring neighbour. The input is what the receiver expects
// (seq, hash, payload length: 12 bytes) followed by headers as they arrive; each header is checked
// with the receiver's own check_frame_header, and its verdict against the header's fields.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "transport/tcp.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 12) return 0;
  uint32_t want[3];
  std::memcpy(want, data, sizeof(want));
  for (size_t off = 12; off + sizeof(unicc::FrameHeader) <= size; off += sizeof(unicc::FrameHeader)) {
    unicc::FrameHeader h;
    std::memcpy(&h, data + off, sizeof(h));
    const unicc::FrameCheck c = unicc::check_frame_header(h, want[0], want[1], want[2]);
    switch (c) {
      case unicc::FrameCheck::kData:
        // Only a data frame of exactly the expected request and size is let through to the buffer.
        if (h.type != unicc::kFrameData || h.seq != want[0] || h.hash != want[1] || h.len != want[2]) std::abort();
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
