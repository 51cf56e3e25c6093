#include <vector>

#include "algorithms/ring.h"
#include "algorithms/schedules.h"

namespace unicc {

Schedule recursive_doubling_allreduce_schedule(int n, int me, size_t count, size_t es, size_t chunk_elems) {
  Schedule s;
  s.size = n;
  s.rank = me;
  int p = 1;
  while (p * 2 <= n) p *= 2;
  const int r = n - p;  // ranks 0..2r-1 fold in pairs: the even one hands its buffer to the odd one
  const Chunking ch(Partition{count, 1}, chunk_elems);
  auto chunk = [&](Step::Kind kind, int peer, size_t c) {
    return Step{kind, false, false, peer, ch.start(0, c) * es, ch.len(0, c) * es, {}};
  };
  std::vector<int32_t> prev(ch.chunks, -1);  // per chunk: the step that last wrote it
  if (me < 2 * r && me % 2 == 0) {
    for (size_t c = 0; c < ch.chunks; ++c) {
      const int32_t sent = s.add(chunk(Step::kSend, me + 1, c));
      Step back = chunk(Step::kRecv, me + 1, c);
      back.after.push_back(sent);  // the result may land only once the input has left
      s.add(std::move(back));
    }
    return s;
  }
  if (me < 2 * r) {
    for (size_t c = 0; c < ch.chunks; ++c) {
      Step fold = chunk(Step::kRecvReduce, me - 1, c);
      fold.received_first = true;  // lower rank first, as everywhere below
      prev[c] = s.add(std::move(fold));
    }
  }
  const int v = me < 2 * r ? me / 2 : me - r;  // my rank among the p that exchange
  auto real = [r](int w) { return w < r ? 2 * w + 1 : w + r; };
  for (int mask = 1; mask < p; mask <<= 1) {
    const int partner = v ^ mask;
    for (size_t c = 0; c < ch.chunks; ++c) {
      Step send = chunk(Step::kSend, real(partner), c);
      send.round_source = true;  // a 16-bit wire: both partners then sum the same rounded values
      if (prev[c] >= 0) send.after.push_back(prev[c]);
      const int32_t sent = s.add(std::move(send));
      Step got = chunk(Step::kRecvReduce, real(partner), c);
      got.received_first = partner < v;
      got.after.push_back(sent);  // reduce into the chunk only once it has left
      prev[c] = s.add(std::move(got));
    }
  }
  if (me < 2 * r) {
    for (size_t c = 0; c < ch.chunks; ++c) {
      Step back = chunk(Step::kSend, me - 1, c);
      back.round_source = true;
      if (prev[c] >= 0) back.after.push_back(prev[c]);
      s.add(std::move(back));
    }
  }
  return s;
}

}  // namespace unicc
