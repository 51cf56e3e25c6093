#include "common/siphash.h"

#include <cstring>

namespace unicc {

namespace {

inline uint64_t rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

inline uint64_t load_le64(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

struct State {
  uint64_t v0, v1, v2, v3;
  void round() {
    v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);
    v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;
    v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;
    v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);
  }
  void absorb(uint64_t m) {
    v3 ^= m;
    round();
    round();
    v0 ^= m;
  }
};

}  // namespace

uint64_t siphash24(const SipKey& key, const void* data, size_t len) {
  State s{key.k0 ^ 0x736f6d6570736575ull, key.k1 ^ 0x646f72616e646f6dull, key.k0 ^ 0x6c7967656e657261ull,
          key.k1 ^ 0x7465646279746573ull};
  const auto* p = static_cast<const unsigned char*>(data);
  const size_t whole = len - len % 8;
  for (size_t i = 0; i < whole; i += 8) s.absorb(load_le64(p + i));
  // The last word: the remaining bytes, little endian, with the length's low byte on top.
  unsigned char tail[8] = {};
  std::memcpy(tail, p + whole, len % 8);
  tail[7] = static_cast<unsigned char>(len);
  s.absorb(load_le64(tail));
  s.v2 ^= 0xff;
  for (int i = 0; i < 4; ++i) s.round();
  return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

SipKey token_key(const std::string& token) {
  // Two fixed-key hashes of the token, one per half: a token of any length becomes 128 key bits.
  const SipKey derive{0x756e6963632d6b64ull, 0x6572697665722d31ull};  // "unicc-kd", "eriver-1"
  std::string msg = "unicc-token-key/0/" + token;
  SipKey k;
  k.k0 = siphash24(derive, msg.data(), msg.size());
  msg[16] = '1';
  k.k1 = siphash24(derive, msg.data(), msg.size());
  return k;
}

}  // namespace unicc
