#include "algorithms/schedule.h"

namespace unicc {

namespace {

bool writes(const Step& s) { return s.kind != Step::kSend; }

bool overlap(const Step& a, const Step& b) {
  return a.buffer == b.buffer && a.offset < b.offset + b.bytes && b.offset < a.offset + a.bytes;
}

}  // namespace

void append_after(Schedule& first, const Schedule& next) {
  const int32_t base = static_cast<int32_t>(first.steps.size());
  std::vector<Step> added;
  added.reserve(next.steps.size());
  for (const Step& s : next.steps) {
    Step t = s;
    for (int32_t& d : t.after) d += base;
    // Only conflicts order the seam: reads after writes, writes after reads and writes.
    for (int32_t i = 0; i < base; ++i) {
      const Step& f = first.steps[static_cast<size_t>(i)];
      if ((writes(f) || writes(s)) && overlap(f, s)) t.after.push_back(i);
    }
    added.push_back(std::move(t));
  }
  for (Step& s : added) first.steps.push_back(std::move(s));
}

Schedule batch(const std::vector<Schedule>& parts, const std::vector<Place>& places) {
  Schedule out;
  if (!parts.empty()) {
    out.rank = parts[0].rank;
    out.size = parts[0].size;
  }
  for (size_t k = 0; k < parts.size(); ++k) {
    const int32_t base = static_cast<int32_t>(out.steps.size());
    for (Step s : parts[k].steps) {
      for (int32_t& d : s.after) d += base;
      s.offset += places.at(k).offset;
      s.buffer = places[k].buffer;
      s.gate = static_cast<int32_t>(k);
      out.steps.push_back(std::move(s));
    }
  }
  return out;
}

Schedule lift(const Schedule& part, const std::vector<int>& members, int rank_in_group, int group_size,
              size_t base_offset) {
  Schedule out;
  out.rank = rank_in_group;
  out.size = group_size;
  out.steps = part.steps;
  for (Step& s : out.steps) {
    s.peer = members.at(static_cast<size_t>(s.peer));
    s.offset += base_offset;
  }
  return out;
}

}  // namespace unicc
