#include "binding/command_ring.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <vector>
#include <cstring>
#include <stdexcept>

#include "memory/user_buffer.h"

namespace unicc {

namespace {

std::atomic<uint32_t>& word(const Mapping& m, size_t at) {
  return *reinterpret_cast<std::atomic<uint32_t>*>(static_cast<char*>(m.data) + at);
}

// Shared (not FUTEX_PRIVATE): the other side is another process.
void futex_wait(std::atomic<uint32_t>& w, uint32_t seen, long ns) {
  timespec ts{0, ns};
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&w), FUTEX_WAIT, seen, &ts, nullptr, 0);
}

void futex_wake(std::atomic<uint32_t>& w) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&w), FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

constexpr long kNapNs = 100'000'000;  // how often the sleeping thread looks at its stop flag

}  // namespace

// What completions need, shared with the core's threads (they may finish after the ring stopped).
struct CommandRing::State {
  // Bytes [start, end) of buffer id that request `ticket` (ours, not the client's req) works on.
  struct Span {
    uint64_t ticket, id, start, end;
  };
  std::shared_ptr<Mapping> ring;
  std::mutex mu;  // completions come from two threads (both lanes)
  size_t in_flight = 0;
  std::vector<Span> busy;
  uint64_t tickets = 0;
  std::function<void()> drained;  // set by stop()
  bool taken_all = false;         // the thread has ended: nothing more will be taken
  std::function<void(const std::string&)> fatal;

  // As World.claim: memory a request in flight works on is refused to another one until it is
  // done. Returns "" and sets ticket, or what is in the way. Called with mu held.
  std::string claim(const std::vector<Span>& spans, uint64_t& ticket) {
    for (const Span& n : spans)
      for (const Span& b : busy)
        if (n.id == b.id && n.start < b.end && b.start < n.end)
          return "bytes " + std::to_string(n.start) + ".." + std::to_string(n.end) + " of buffer " + std::to_string(n.id) +
                 " are still in use by a pending request; wait for it before passing them again";
    ticket = ++tickets;
    for (Span n : spans) {
      n.ticket = ticket;
      busy.push_back(n);
    }
    return "";
  }

  void complete(uint64_t req, const std::string& error, uint64_t ticket = 0) {
    std::function<void()> done;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (ticket) busy.erase(std::remove_if(busy.begin(), busy.end(), [&](const Span& b) { return b.ticket == ticket; }), busy.end());
      std::atomic<uint32_t>& tail = word(*ring, ring::kCqTailAt);
      const uint32_t t = tail.load(std::memory_order_relaxed);
      if (t - word(*ring, ring::kCqHeadAt).load(std::memory_order_acquire) >= ring::kEntries) {
        // Only a client with more than kEntries in flight gets here: it broke the protocol.
        if (fatal) fatal("the client has more than " + std::to_string(ring::kEntries) + " requests in flight on its ring");
      } else {
        ring::encode_completion(static_cast<uint8_t*>(ring->data) + ring::kCqAt + (t % ring::kEntries) * ring::kCompletionBytes,
                                req, error);
        tail.store(t + 1, std::memory_order_seq_cst);
        futex_wake(tail);
      }
      if (--in_flight == 0 && taken_all && drained) done = std::move(drained);
    }
    if (done) done();
  }
};

CommandRing::CommandRing(std::shared_ptr<Mapping> ring, RingTargets targets)
    : state_(std::make_shared<State>()), targets_(std::move(targets)) {
  if (ring->bytes < ring::kRingBytes) throw std::runtime_error("the command ring is smaller than " + std::to_string(ring::kRingBytes) + " bytes");
  if (word(*ring, ring::kMagicAt).load() != ring::kMagic || word(*ring, ring::kVersionAt).load() != ring::kVersion ||
      word(*ring, ring::kEntriesAt).load() != ring::kEntries)
    throw std::runtime_error("the command ring's header is not version " + std::to_string(ring::kVersion) + " with " +
                             std::to_string(ring::kEntries) + " entries");
  state_->ring = std::move(ring);
  state_->fatal = targets_.fatal;
  thread_ = std::thread([this] { run(); });
}

CommandRing::~CommandRing() { halt(); }

void CommandRing::add_buffer(uint64_t id, std::shared_ptr<Mapping> m) {
  std::lock_guard<std::mutex> lock(buffers_mu_);
  buffers_[id] = std::move(m);
}

bool CommandRing::remove_buffer(uint64_t id) {
  std::lock_guard<std::mutex> lock(buffers_mu_);
  return buffers_.erase(id) > 0;
}

std::shared_ptr<Mapping> CommandRing::buffer(uint64_t id) {
  std::lock_guard<std::mutex> lock(buffers_mu_);
  auto it = buffers_.find(id);
  return it == buffers_.end() ? nullptr : it->second;
}

// Does not wait for the thread: it may be running one of the client's collectives on its own
// (submit_or_run), and the caller is the JavaScript thread.
void CommandRing::stop(std::function<void()> drained) {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    if (!state_->taken_all || state_->in_flight) {
      state_->drained = std::move(drained);
      drained = nullptr;
    }
  }
  if (drained) return drained();
  stop_ = true;
  futex_wake(word(*state_->ring, ring::kSqTailAt));
}

void CommandRing::halt() {
  if (!thread_.joinable()) return;
  stop_ = true;
  futex_wake(word(*state_->ring, ring::kSqTailAt));
  thread_.join();
}

void CommandRing::run() {
  std::atomic<uint32_t>& tail = word(*state_->ring, ring::kSqTailAt);
  bool intact = true;
  while (intact && !stop_.load()) {
    const uint32_t seen = tail.load(std::memory_order_acquire);
    if (seen == word(*state_->ring, ring::kSqHeadAt).load(std::memory_order_relaxed)) futex_wait(tail, seen, kNapNs);
    intact = take_all();
  }
  if (intact) take_all();  // what the client submitted before it asked to close
  std::function<void()> done;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->taken_all = true;
    if (!state_->in_flight && state_->drained) done = std::move(state_->drained);
  }
  if (done) done();
}

// Takes every submission between head and tail; false once the client broke the ring.
bool CommandRing::take_all() {
  const Mapping& r = *state_->ring;
  std::atomic<uint32_t>& head = word(r, ring::kSqHeadAt);
  uint32_t h = head.load(std::memory_order_relaxed);
  const uint32_t t = word(r, ring::kSqTailAt).load(std::memory_order_acquire);
  if (t - h > ring::kEntries) {
    if (targets_.fatal) targets_.fatal("its submission counters are corrupt (head " + std::to_string(h) + ", tail " + std::to_string(t) + ")");
    return false;
  }
  for (; h != t; ++h) {
    uint8_t entry[ring::kSubmissionBytes];  // a copy: the client cannot change what we checked
    std::memcpy(entry, static_cast<const uint8_t*>(r.data) + ring::kSqAt + (h % ring::kEntries) * ring::kSubmissionBytes, sizeof(entry));
    head.store(h + 1, std::memory_order_release);
    take(entry);
  }
  return true;
}

void CommandRing::take(const uint8_t* entry) {
  ring::Submission s;
  std::string error = ring::decode_submission(entry, s);
  std::shared_ptr<Mapping> in, out;
  const size_t elem = error.empty() ? dtype_size(static_cast<DType>(s.dtype)) : 1;
  const bool client_memory = s.buf == ring::kClientMemory && s.coll != static_cast<uint8_t>(Coll::Barrier);
  if (error.empty() && client_memory) {
    error = client_memory_error(s, elem);
  } else if (error.empty() && s.coll != static_cast<uint8_t>(Coll::Barrier)) {
    in = buffer(s.buf);
    if (!in) error = "buffer " + std::to_string(s.buf) + " is not mapped";
    else if (!ring::span_fits(s.offset, s.count, elem, in->bytes)) error = ring::span_error(s.offset, s.count, s.dtype, s.buf, in->bytes);
  }
  if (error.empty() && s.coll == static_cast<uint8_t>(Coll::Allgather)) {
    out = buffer(s.out);
    if (!out) error = "allgather output buffer " + std::to_string(s.out) + " is not mapped";
    else if (s.count > UINT64_MAX / static_cast<uint64_t>(targets_.size)) error = "allgather of too many elements";
    else if (!ring::span_fits(s.out_offset, s.count * targets_.size, elem, out->bytes))
      error = ring::span_error(s.out_offset, s.count * targets_.size, s.dtype, s.out, out->bytes);
  }
  if (error.empty() && s.coll == static_cast<uint8_t>(Coll::Broadcast) && (s.root < 0 || s.root >= targets_.size))
    error = "root " + std::to_string(s.root) + " is not a rank of this world (0.." + std::to_string(targets_.size - 1) + ")";
  uint64_t ticket = 0;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    if (error.empty()) {
      std::vector<State::Span> spans;
      if ((in || client_memory) && s.count) spans.push_back({0, s.buf, s.offset, s.offset + s.count * elem});
      if (out && s.count) spans.push_back({0, s.out, s.out_offset, s.out_offset + s.count * targets_.size * elem});
      error = state_->claim(spans, ticket);
    }
    ++state_->in_flight;
  }
  if (!error.empty()) return state_->complete(s.req, "unicc: " + targets_.who + ": bad request from the client: " + error);
  // Only an allreduce's values may travel in 16 bits (as World.allreduce passes them).
  const Wire wire = s.coll != static_cast<uint8_t>(Coll::Allreduce) ? Wire::Exact
                    : s.wire == ring::kDefaultWire ? targets_.default_wire
                                                   : static_cast<Wire>(s.wire);
  char* base = client_memory ? reinterpret_cast<char*>(s.offset) : in ? static_cast<char*>(in->data) + s.offset : nullptr;
  // The completion keeps the mappings: an unmap while the request runs frees nothing under it.
  auto done = [state = state_, req = s.req, ticket, in, out](const std::string& e) { state->complete(req, e, ticket); };
  if (!s.name.empty()) {
    NamedRequest r;
    r.name = std::move(s.name);
    r.dtype = static_cast<DType>(s.dtype);
    r.op = static_cast<RedOp>(s.op);
    r.wire = wire;
    r.buf = base;
    r.count = s.count;
    r.done = std::move(done);
    return hand_over([&] { targets_.submit_named(std::move(r)); }, s.req);
  }
  Op op;
  op.coll = static_cast<Coll>(s.coll);
  op.dtype = static_cast<DType>(s.dtype);
  op.op = static_cast<RedOp>(s.op);
  op.buf = base;
  op.out = out ? static_cast<char*>(out->data) + s.out_offset : nullptr;
  op.count = s.count;
  op.client_pid = client_memory ? targets_.client_pid : 0;
  op.root = s.root;
  op.wire = wire;
  op.done = std::move(done);
  hand_over([&] { targets_.submit(std::move(op)); }, s.req);
}

// A request on the client's own memory: only where attach works, only unnamed (the engine fuses
// from pointers of this process), and only where the span can be reached now. Any alignment: the
// core copies those bytes into its own aligned areas.
std::string CommandRing::client_memory_error(const ring::Submission& s, size_t elem) const {
  if (!targets_.client_pid) return "buffer 0 (the client's own memory) needs cross-memory attach, which this bridge was refused";
  if (s.coll != static_cast<uint8_t>(Coll::Allreduce) && s.coll != static_cast<uint8_t>(Coll::Broadcast))
    return "only an allreduce or a broadcast may work on the client's own memory (buffer 0)";
  if (!s.name.empty()) return "a named allreduce needs a mapped buffer, not the client's own memory (buffer 0)";
  if (s.count > UINT64_MAX / elem) return std::to_string(s.count) + " elements do not fit the address space";
  return check_client_span(targets_.client_pid, s.offset, s.count * elem);
}

// A core that refuses a request (closing) fails it like any other error.
void CommandRing::hand_over(const std::function<void()>& submit, uint64_t req) {
  try {
    submit();
  } catch (const std::exception& e) {
    state_->complete(req, e.what());  // its span stays claimed: a core that refuses work is closing
  }
}

}  // namespace unicc
