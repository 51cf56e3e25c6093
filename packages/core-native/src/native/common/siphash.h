#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace unicc {

// SipHash-2-4 (Aumasson & Bernstein): a keyed MAC for short messages. Ranks use it to prove to
// each other that they know the job token without sending it.
struct SipKey {
  uint64_t k0 = 0, k1 = 0;
};

uint64_t siphash24(const SipKey& key, const void* data, size_t len);

// The 128-bit key that stands for a job token (any length, empty when the job has none).
SipKey token_key(const std::string& token);

}  // namespace unicc
