#include "engine/fusion.h"

#include <cstdint>
#include <cstring>
#include <map>
#include <set>
#include <tuple>

namespace unicc {

std::vector<std::vector<size_t>> plan_fusion(const std::vector<FusionInput>& batch, size_t fusion_bytes) {
  std::map<std::tuple<int, int, int>, std::vector<size_t>> kinds;
  for (size_t i = 0; i < batch.size(); ++i)
    kinds[{static_cast<int>(batch[i].dtype), static_cast<int>(batch[i].op), static_cast<int>(batch[i].wire)}].push_back(i);
  std::vector<std::vector<size_t>> groups;
  for (const auto& [kind, members] : kinds) {
    size_t open = SIZE_MAX, open_bytes = 0;  // the fusion group being filled
    for (size_t i : members) {
      const size_t bytes = batch[i].bytes;
      if (bytes >= kInPlaceBytes) {
        groups.push_back({i});
        continue;
      }
      if (open == SIZE_MAX || open_bytes + bytes > fusion_bytes) {
        open = groups.size();
        open_bytes = 0;
        groups.emplace_back();
      }
      groups[open].push_back(i);
      open_bytes += bytes;
    }
  }
  return groups;
}

namespace {

bool on_device(const Span& s) { return s.memory && !s.memory->host_addressable(); }

}  // namespace

std::vector<void*> FusionBuffer::pack(const std::vector<std::vector<Span>>& groups) {
  size_t fused = 0;
  for (const auto& g : groups)
    if (g.size() > 1)
      for (const Span& s : g) fused += s.bytes;
  if (buf_.size() < fused) buf_.resize(fused);
  std::vector<void*> where(groups.size());
  at_.assign(groups.size(), 0);
  size_t off = 0;
  for (size_t i = 0; i < groups.size(); ++i) {
    if (groups[i].size() < 2) {
      where[i] = groups[i].empty() ? nullptr : groups[i][0].data;
      continue;
    }
    at_[i] = off;
    where[i] = buf_.data() + off;
    for (const Span& s : groups[i]) {
      if (on_device(s)) s.memory->download(buf_.data() + off, s.data, s.bytes);
      else std::memcpy(buf_.data() + off, s.data, s.bytes);
      off += s.bytes;
    }
  }
  return where;
}

void FusionBuffer::unpack(const std::vector<std::vector<Span>>& groups) const {
  std::set<MemoryBackend*> uploaded_to;
  for (size_t i = 0; i < groups.size(); ++i) {
    if (groups[i].size() < 2) continue;
    size_t at = at_[i];
    for (const Span& s : groups[i]) {
      if (on_device(s)) {
        s.memory->upload(s.data, buf_.data() + at, s.bytes);
        uploaded_to.insert(s.memory);
      } else {
        std::memcpy(s.data, buf_.data() + at, s.bytes);
      }
      at += s.bytes;
    }
  }
  for (MemoryBackend* m : uploaded_to) m->synchronize();
}

}  // namespace unicc
