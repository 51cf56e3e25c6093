// Batches of allreduces across hosts with shared memory inside (hierarchical), as one pipeline:
// intra-host reduce of piece k+1 overlaps the cross-host ring of piece k and the intra-host share
// of piece k-1. The host's side runs on a kept thread (host_side_); the cross-host side is one
// schedule for the whole batch (schedule.h: batch), each piece gated on its reduce, so that the
// lanes move from one piece to the next without draining the ring in between. With one rank per
// host, or on the flat ring, there is no host's side: each piece crosses whole, ready at once.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>

#include "algorithms/schedules.h"
#include "common/clock.h"
#include "common/error.h"
#include "communicator.h"
#include "algorithms/local.h"
#include "transport/executor.h"

namespace unicc {

namespace {

struct Piece {
  Op* op;
  uint32_t buffer;  // index of op in the batch
  char* buf;
  size_t count;
  Desc d;
};

bool same_kind(const Op& a, const Op& b) { return a.dtype == b.dtype && a.op == b.op && a.wire == b.wire; }

}  // namespace

// The host's side reduces and shares pieces in shared memory: allreduces in memory the CPU
// cannot touch cross to host memory and back whole, as execute_through_host does for one.
void Communicator::pipelined_through_host(const std::vector<Op*>& ops) {
  std::vector<Op> copies;
  copies.reserve(ops.size());  // the batch points into it
  std::vector<std::vector<char>> stages(ops.size());
  std::vector<Op*> batch;
  for (size_t i = 0; i < ops.size(); ++i) {
    Op& op = *ops[i];
    if (memory_of(op).host_addressable()) {
      batch.push_back(&op);
      continue;
    }
    stages[i].resize(op.count * dtype_size(op.dtype));
    op.memory->download(stages[i].data(), op.buf, stages[i].size());
    copies.push_back(op);
    copies.back().memory = nullptr;
    copies.back().buf = stages[i].data();
    batch.push_back(&copies.back());
  }
  pipelined_allreduces(batch);
  for (size_t i = 0; i < ops.size(); ++i)
    if (!stages[i].empty()) ops[i]->memory->upload(ops[i]->buf, stages[i].data(), stages[i].size());
}

void Communicator::pipelined_allreduces(const std::vector<Op*>& ops) {
  const bool inside = pipelines() && shm_;  // a host's side: its ranks reduce and share pieces
  if (inside && std::any_of(ops.begin(), ops.end(), [](const Op* op) { return !memory_of(*op).host_addressable(); }))
    return pipelined_through_host(ops);
  const size_t lr = inside ? static_cast<size_t>(topo_.local_rank) : 0;
  auto crossing = [&](size_t count) { return inside ? host_blocks(count) : Partition{count, 1}; };
  std::vector<Piece> pieces;
  std::vector<char*> bufs;
  std::vector<MemoryBackend*> memories;  // by buffer, where some op is in a backend's memory
  if (std::any_of(ops.begin(), ops.end(), [](const Op* op) { return op->memory; }))
    for (const Op* op : ops) memories.push_back(&memory_of(*op));
  size_t batch_bytes = 0;
  for (const Op* op : ops) batch_bytes += op->count * dtype_size(op->dtype);
  const size_t piece_bytes = inside ? pipeline_piece_bytes(batch_bytes, piece_bytes_) : piece_bytes_;
  for (Op* op : ops) {
    const size_t es = dtype_size(op->dtype);
    const size_t per = std::max<size_t>(1, piece_bytes / es);
    const uint32_t buffer = static_cast<uint32_t>(bufs.size());
    bufs.push_back(static_cast<char*>(op->buf));
    for (size_t start = 0; start == 0 || start < op->count; start += per) {
      Piece p{op, buffer, static_cast<char*>(op->buf) + start * es, std::min(per, op->count - start), {}};
      p.d.seq = seq_++;
      p.d.coll = static_cast<uint8_t>(Coll::Allreduce);
      p.d.dtype = static_cast<uint8_t>(op->dtype);
      p.d.op = static_cast<uint8_t>(op->op);
      p.d.count = p.count;
      pieces.push_back(p);
      if (op->count == 0) break;
    }
  }
  const size_t n = pieces.size();
  std::mutex mu;
  std::condition_variable cv;
  std::atomic<size_t> reduced{0};  // pieces reduced inside the host, in order: the cross-host gates
  std::vector<char> crossed(n, 0);
  std::string error;
  auto wake = [this] {
    const uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
  };
  auto stop = [&](const std::string& why) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (error.empty()) error = why;
    }
    cv.notify_all();
    if (shm_) shm_->abort(why);  // wakes whichever side is still waiting on the other ranks of the host
    wake();
  };
  auto failed = [&] {
    std::lock_guard<std::mutex> lock(mu);
    return !error.empty();
  };
  // The host's side, in one fixed order on every local rank: reduce every piece (that needs only
  // the inputs), then share each piece once it has crossed hosts. So a local rank whose ring runs
  // faster never waits for the others' rings before it has crossed its whole share.
  if (!inside) reduced = n;
  else host_side_.start([&] {
    try {
      for (size_t k = 0; k < n; ++k) {
        local_reduce_scatter(*shm_, pieces[k].d, pieces[k].buf, host_blocks(pieces[k].count), pieces[k].op->dtype,
                             pieces[k].op->op);
        {
          std::lock_guard<std::mutex> lock(mu);
          reduced = k + 1;
        }
        cv.notify_all();
        wake();
      }
      for (size_t k = 0; k < n; ++k) {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return crossed[k] || !error.empty(); });
        if (!error.empty()) return;
        lock.unlock();
        local_allgather_blocks(*shm_, pieces[k].d, pieces[k].buf, host_blocks(pieces[k].count),
                               dtype_size(pieces[k].op->dtype));
      }
    } catch (const std::exception& e) {
      stop(e.what());
    }
  });
  auto mark_crossed = [&](size_t k) {
    {
      std::lock_guard<std::mutex> lock(mu);
      crossed[k] = 1;
    }
    cv.notify_all();
  };
  try {
    const Group g = make_group(static_cast<int>(lr));
    // One run per stretch of pieces reduced the same way (one dtype, op and wire per run).
    for (size_t first = 0; first < n && !failed();) {
      size_t end = first + 1;
      while (end < n && same_kind(*pieces[end].op, *pieces[first].op)) ++end;
      const Op& kind = *pieces[first].op;
      const size_t es = dtype_size(kind.dtype);
      std::vector<Schedule> parts;
      std::vector<Place> places;
      Desc d;
      d.seq = seq_++;
      d.coll = static_cast<uint8_t>(Coll::Allreduce);
      d.dtype = static_cast<uint8_t>(kind.dtype);
      d.op = static_cast<uint8_t>(kind.op);
      size_t my_bytes = 0;
      for (size_t k = first; k < end; ++k) {
        const Partition blocks = crossing(pieces[k].count);
        parts.push_back(allreduce_schedule(g, blocks.len(lr), kind.dtype, kind.wire));
        const size_t at = static_cast<size_t>(pieces[k].buf - bufs[pieces[k].buffer]) + blocks.start(lr) * es;
        places.push_back({pieces[k].buffer, at});
        d.count += pieces[k].count;
        my_bytes += blocks.len(lr) * es;
      }
      const Schedule s = batch(parts, places);
      std::vector<size_t> left(end - first);
      for (size_t k = first; k < end; ++k) {
        left[k - first] = parts[k - first].steps.size();
        if (left[k - first] == 0) mark_crossed(k);
      }
      ExecContext cx{d, kind.dtype, kind.op, wire_for(kind.dtype, kind.wire), opt_.timeout_ms, [this] { check_abort(); },
                     label(opt_.rank)};
      cx.gate_open = [&](int32_t gate) { return reduced.load() > first + static_cast<size_t>(gate); };
      cx.buffer_memory = memories;
      cx.wake_fd = wake_fd_;
      cx.on_done = [&](int32_t step) {
        const size_t k = first + static_cast<size_t>(s.steps[static_cast<size_t>(step)].gate);
        if (--left[k - first] == 0) mark_crossed(k);
      };
      {
        // The ring's clock starts once it has something to carry (ring balance compares rates).
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return reduced.load() > first || !error.empty(); });
        if (!error.empty()) break;
      }
      const auto t0 = Clock::now();
      unicc::execute(s, bufs, g.channels, cx);
      ring_use_.bytes += static_cast<double>(my_bytes);
      ring_use_.seconds += std::chrono::duration<double>(Clock::now() - t0).count();
      first = end;
    }
  } catch (const std::exception& e) {
    stop(e.what());
  }
  host_side_.join();
  if (!error.empty()) throw CommError(error);
  for (Op* op : ops)
    if (op->op == RedOp::Avg) memory_of(*op).divide(op->buf, op->count, op->dtype, opt_.size);
}

}  // namespace unicc
