#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace unicc {

// One rank's part in a collective, as data: which bytes of its buffer go to which peer, which
// come from which peer (copied, or reduced into place), and what must have finished first.
// Schedules say nothing about sockets, shared memory or devices; an executor runs them over
// channels (transport/executor.h), and the tests run them in memory over simulated ranks.
//
// Matching: the k-th send from rank a to rank b carries the bytes of the k-th receive of b
// from a, so a pair's messages may travel over several streams and arrive in any order.
struct Step {
  enum Kind : uint8_t { kSend, kRecv, kRecvReduce };
  Kind kind = kSend;
  // kRecvReduce: reduce(received, mine) instead of reduce(mine, received), so that both
  // partners of a pairwise exchange combine in the same order (min/max with NaN, and any
  // non-commutative rounding, then agree bit for bit).
  bool received_first = false;
  // kSend on a 16-bit wire: also round the source through the wire format, so that the sender
  // keeps exactly the values the receiver gets.
  bool round_source = false;
  int peer = 0;        // rank in the schedule's group
  size_t offset = 0;   // bytes from the start of the buffer
  size_t bytes = 0;
  // Steps of the same schedule that must complete before this one touches the buffer: a send
  // reads its bytes only after them, a receive writes (or reduces into) its bytes only after
  // them. A send completes when its bytes have left the buffer; a receive when they are applied.
  std::vector<int32_t> after;
  // Also waits for event `gate` outside the schedule (-1: none), such as another thread's reduce
  // of these bytes inside the host; the executor asks ExecContext::gate_open.
  int32_t gate = -1;
  // Which of the executor's buffers the offset is in, so that one schedule can carry a batch of
  // collectives over separate tensors.
  uint32_t buffer = 0;
};

struct Schedule {
  int rank = 0;  // mine, in the group
  int size = 1;
  std::vector<Step> steps;

  int32_t add(Step s) {
    steps.push_back(std::move(s));
    return static_cast<int32_t>(steps.size() - 1);
  }
};

// Appends `next` to `first` (same rank, same buffer) so that each step of `next` waits for the
// steps of `first` that touch overlapping bytes, where either writes: a composed schedule
// pipelines across the seam instead of waiting for all of `first`.
void append_after(Schedule& first, const Schedule& next);

// Where one part of a batch lives: which buffer, and its first byte there.
struct Place {
  uint32_t buffer = 0;
  size_t offset = 0;
};

// Independent schedules of the same group over separate bytes, as one: part k's steps move to
// places[k] and wait for gate k (when its bytes are ready, e.g. reduced inside the host by another
// thread). One run then carries the whole batch, and a lane that finishes part k's last message
// takes part k+1's first instead of idling while part k drains (as separate runs would).
Schedule batch(const std::vector<Schedule>& parts, const std::vector<Place>& places);

// `part` was built for a subgroup (its peers numbered 0..k-1) over a sub-buffer; returns it with
// peers renamed to members[peer] of the enclosing group and offsets moved by base_offset.
Schedule lift(const Schedule& part, const std::vector<int>& members, int rank_in_group, int group_size,
              size_t base_offset);

}  // namespace unicc
