// The command ring's bytes: one shared-memory file per client (the Python client makes it, the
// bridge maps it), a submission queue the client fills and a completion queue the bridge fills,
// each a power-of-two array of fixed-size entries behind two 32-bit counters. The counters only
// grow (wrapping at 2^32); entry i lives at slot i % kEntries. The counters are also the futex
// words each side sleeps on: the bridge on sq_tail, the client's waiting threads on cq_tail.
// The entries carry the fields of the socket's {t:"op"} and {t:"done"} messages (protocol.ts), so
// the ring is a second transport of the same protocol, not a second protocol.
// Little-endian, as the machines the ring is enabled on (x86-64) are.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace unicc::ring {

constexpr uint32_t kMagic = 0x31524355;  // "UCR1"
constexpr uint32_t kVersion = 1;
constexpr uint32_t kEntries = 128;  // also the most requests a client may have in flight
constexpr size_t kHeaderBytes = 4096;
constexpr size_t kSubmissionBytes = 512;
constexpr size_t kCompletionBytes = 1024;
constexpr size_t kRingBytes = kHeaderBytes + kEntries * (kSubmissionBytes + kCompletionBytes);

// Header: u32 words, each on its own cache line.
constexpr size_t kMagicAt = 0, kVersionAt = 4, kEntriesAt = 8;
constexpr size_t kHeaderProbeBytes = 12;  // magic, version, entries: what a probe of the client's mapping compares
constexpr size_t kSqTailAt = 64;   // client: submissions written
constexpr size_t kSqHeadAt = 128;  // bridge: submissions taken
constexpr size_t kCqTailAt = 192;  // bridge: completions written
constexpr size_t kCqHeadAt = 256;  // client: completions taken
constexpr size_t kSqAt = kHeaderBytes;
constexpr size_t kCqAt = kHeaderBytes + kEntries * kSubmissionBytes;

// Submission entry: u64 req, u64 buf, u64 out (0: none), u64 offset, u64 count, u64 out_offset
// (offsets in bytes), i32 root, u8 coll, u8 dtype, u8 op, u8 wire (kDefaultWire: the bridge's
// UNICC_COMPRESSION), u16 name length (0: unnamed), then the name's bytes.
constexpr size_t kNameAt = 58;
constexpr size_t kNameMax = kSubmissionBytes - kNameAt;
constexpr uint8_t kDefaultWire = 255;
// buf kClientMemory (an allreduce or broadcast, unnamed): offset is an address in the client's
// own memory, which the core reaches by cross-memory attach (the client's tensor, not a mapping).
constexpr uint64_t kClientMemory = 0;
// Completion entry: u64 req, u32 error length (0: success), then the error's bytes.
constexpr size_t kErrorAt = 12;
constexpr size_t kErrorMax = kCompletionBytes - kErrorAt;

struct Submission {
  uint64_t req = 0, buf = 0, out = 0, offset = 0, count = 0, out_offset = 0;
  int32_t root = 0;
  uint8_t coll = 0, dtype = 0, op = 0, wire = 0;
  std::string name;
};

// "" when the collective, dtype and op numbers are ones the ring knows, else what is wrong.
std::string code_error(unsigned coll, unsigned dtype, unsigned op);
// Decodes one submission entry (kSubmissionBytes, already copied out of the shared page, so the
// client cannot change it under us). Returns "" or what is wrong with it; req is set either way.
std::string decode_submission(const uint8_t* entry, Submission& s);

// Whether `count` elements of `elem` bytes at byte `offset` lie inside a buffer of `bytes`
// (computed without overflow), the offset aligned to the element.
bool span_fits(uint64_t offset, uint64_t count, size_t elem, size_t bytes);

// The bridge's words for a span that does not fit (the socket transport's, protocol.ts viewOf).
std::string span_error(uint64_t offset, uint64_t count, uint8_t dtype, uint64_t id, size_t bytes);

// Writes a completion entry (the error cut to kErrorMax bytes).
void encode_completion(uint8_t* entry, uint64_t req, const std::string& error);

}  // namespace unicc::ring
