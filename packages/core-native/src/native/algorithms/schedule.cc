#include "algorithms/schedule.h"

namespace unicc {

namespace {

bool writes(const Step& s) { return s.kind != Step::kSend; }

bool overlap(const Step& a, const Step& b) {
  return a.offset < b.offset + b.bytes && b.offset < a.offset + a.bytes;
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
