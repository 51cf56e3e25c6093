#include "transport/shm_channel.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

#include "common/clock.h"
#include "common/error.h"
#include "common/process.h"
#include "transport/shm_file.h"
#include "transport/tcp.h"

namespace unicc {

// One direction: the writer owns tail, writer_sleeps and the abort record; the reader head and
// reader_sleeps. A side sets its *_sleeps flag, then looks again, before it sleeps; the other
// rings only when it sees the flag after publishing its move (both sequentially consistent, so
// that one of the two always sees the other).
struct ShmChannel::Ring {
  alignas(64) std::atomic<uint64_t> tail;
  alignas(64) std::atomic<uint64_t> head;
  alignas(64) std::atomic<uint32_t> reader_sleeps;
  alignas(64) std::atomic<uint32_t> writer_sleeps;
  alignas(64) std::atomic<uint32_t> aborted;  // the record below is written before it is set
  uint32_t abort_seq;
  uint64_t abort_at;  // where the abort frame starts in the stream: after the frame being written
  uint32_t abort_len;
  char abort_text[kMaxAbortText];
};

struct ShmChannel::Segment {
  std::atomic<uint32_t> magic;
  std::atomic<uint32_t> opened;  // sides holding all they need: the second removes the names
  std::atomic<int32_t> pid[2];   // the lower rank's process, the upper's
  Ring ring[2];                  // [0]: lower to upper, [1]: upper to lower
};

namespace {

constexpr uint32_t kMagic = 0x31435355;  // "USC1"
constexpr size_t kRingsAt = (sizeof(ShmChannel::Segment) + 4095) / 4096 * 4096;
constexpr size_t kSegmentBytes = kRingsAt + 2 * ShmChannel::kRingBytes;

void copy_in(char* ring, uint64_t pos, const char* src, size_t n) {
  const size_t at = pos & (ShmChannel::kRingBytes - 1), first = std::min(n, ShmChannel::kRingBytes - at);
  std::memcpy(ring + at, src, first);
  std::memcpy(ring, src + first, n - first);
}

void copy_out(char* dst, const char* ring, uint64_t pos, size_t n) {
  const size_t at = pos & (ShmChannel::kRingBytes - 1), first = std::min(n, ShmChannel::kRingBytes - at);
  std::memcpy(dst, ring + at, first);
  std::memcpy(dst + first, ring, n - first);
}

// Calls attempt (true: done) every millisecond until it succeeds or the deadline passes.
template <class Attempt>
bool retry_until(int64_t deadline_ms, Attempt attempt) {
  for (;;) {
    if (attempt()) return true;
    if (now_ms() > deadline_ms) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

void drain(int fd) {
  char buf[64];
  while (::read(fd, buf, sizeof buf) > 0) {
  }
}

}  // namespace

ShmChannel::ShmChannel(const std::string& name, int me, int peer, int peer_pid, std::string peer_label)
    : name_(name), label_(std::move(peer_label)), me_(me), peer_pid_(peer_pid), lower_(me < peer) {}

ShmChannel::~ShmChannel() {
  if (seg_) munmap(seg_, kSegmentBytes);
  for (int fd : {my_bell_, peer_bell_, peer_pidfd_})
    if (fd >= 0) ::close(fd);
  if (made_) remove_names();  // gone already once both sides joined; else the peer never came
}

std::string ShmChannel::bell(int side) const { return "/dev/shm" + name_ + "-bell" + std::to_string(side); }

void ShmChannel::remove_names() const {
  shm_unlink(name_.c_str());
  ::unlink(bell(0).c_str());
  ::unlink(bell(1).c_str());
}

[[noreturn]] void ShmChannel::fail(const std::string& what) const {
  throw CommError("rank " + std::to_string(me_) + ", shared-memory channel /dev/shm" + name_ + " to " + label_ + ": " +
                  what);
}

void ShmChannel::make() {
  const int fd = shm_open(name_.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) {
    const bool exists = errno == EEXIST;
    fail("cannot create it: " + errno_text() +
         (exists ? std::string("; ") + kSharedNameTaken : ""));
  }
  made_ = true;
  std::string why = reserve_shared_file(fd, kSegmentBytes);
  if (why.empty() && (mkfifo(bell(0).c_str(), 0600) != 0 || mkfifo(bell(1).c_str(), 0600) != 0 || !map(fd)))
    why = errno_text();
  ::close(fd);
  if (!why.empty()) fail("cannot make it: " + why);
  open_my_bell();
  seg_->magic.store(kMagic, std::memory_order_release);
}

bool ShmChannel::map(int fd) {
  void* p = mmap(nullptr, kSegmentBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return false;
  seg_ = static_cast<Segment*>(p);
  const int mine = lower_ ? 0 : 1, theirs = 1 - mine;
  out_ = &seg_->ring[mine];
  in_ = &seg_->ring[theirs];
  out_bytes_ = reinterpret_cast<char*>(seg_) + kRingsAt + mine * kRingBytes;
  in_bytes_ = reinterpret_cast<char*>(seg_) + kRingsAt + theirs * kRingBytes;
  return true;
}

// Read and write: the FIFO never reports end-of-file, and opening it never blocks.
void ShmChannel::open_my_bell() {
  const int mine = lower_ ? 0 : 1;
  my_bell_ = ::open(bell(mine).c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (my_bell_ < 0) fail("cannot open its doorbell " + bell(mine) + ": " + errno_text());
  seg_->pid[mine].store(getpid());
}

void ShmChannel::connect(int64_t deadline_ms) {
  const int theirs = lower_ ? 1 : 0;
  if (!lower_) {
    int fd = -1;
    const bool made = retry_until(deadline_ms, [&] {
      fd = shm_open(name_.c_str(), O_RDWR | O_CLOEXEC, 0);
      struct stat st {};
      if (fd >= 0 && fstat(fd, &st) == 0 && static_cast<size_t>(st.st_size) == kSegmentBytes) return true;
      if (fd >= 0) ::close(fd);
      return false;
    });
    if (!made) fail("waited for " + label_ + " to make it until the timeout (UNICC_TIMEOUT_S). Did it start?");
    const bool mapped = map(fd);
    const std::string why = errno_text();
    ::close(fd);
    if (!mapped) fail("cannot map it: " + why);
    if (!retry_until(deadline_ms, [&] { return seg_->magic.load(std::memory_order_acquire) == kMagic; }))
      fail(label_ + " made it but never readied it: did it fail meanwhile? Look at its output");
    open_my_bell();
  }
  // The peer's bell opens for writing once the peer holds it for reading.
  const bool joined = retry_until(deadline_ms, [&] {
    if (peer_bell_ < 0) peer_bell_ = ::open(bell(theirs).c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    return peer_bell_ >= 0 && seg_->pid[theirs].load() != 0;
  });
  if (!joined) fail("waited for " + label_ + " to open its end until the timeout (UNICC_TIMEOUT_S). Did it start?");
  if (seg_->pid[theirs].load() != peer_pid_)
    fail("its other end is held by process " + std::to_string(seg_->pid[theirs].load()) + ", not by " + label_ + "; " +
         kSharedNameTaken);
  peer_pidfd_ = static_cast<int>(syscall(SYS_pidfd_open, peer_pid_, 0));  // -1 before Linux 5.3: see peer_gone
  if (seg_->opened.fetch_add(1) == 1) remove_names();
}

bool ShmChannel::peer_gone() {
  if (peer_pidfd_ >= 0) {
    pollfd pf{peer_pidfd_, POLLIN, 0};
    return ::poll(&pf, 1, 0) > 0;
  }
  // No pidfd (Linux before 5.3): look at the process now and then, as the executor wakes at
  // least every 100 ms.
  const int64_t now = now_ms();
  if (now - last_liveness_check_ms_ < kLivenessCheckMs) return false;
  last_liveness_check_ms_ = now;
  return !process_alive(peer_pid_);
}

void ShmChannel::ring_peer() {
  const char one = 1;
  (void)!::write(peer_bell_, &one, 1);  // a full FIFO has rung already
}

size_t ShmChannel::write(size_t, const iovec* iov, int iovcnt) {
  out_->writer_sleeps.store(0, std::memory_order_relaxed);
  const uint64_t tail = out_->tail.load(std::memory_order_relaxed);
  // The peer's counter is not trusted to stay in range: at worst the stream stalls.
  const uint64_t used = tail - out_->head.load(std::memory_order_acquire);
  size_t room = used >= kRingBytes ? 0 : static_cast<size_t>(kRingBytes - used), put = 0;
  for (int i = 0; i < iovcnt && room > 0; ++i) {
    const size_t n = std::min(iov[i].iov_len, room);
    copy_in(out_bytes_, tail + put, static_cast<const char*>(iov[i].iov_base), n);
    put += n;
    room -= n;
  }
  if (put == 0) {
    if (peer_gone()) throw ChannelLost("its process exited");
    return 0;
  }
  out_->tail.store(tail + put);
  if (out_->reader_sleeps.load()) ring_peer();
  return put;
}

size_t ShmChannel::read(size_t, void* dst, size_t n) { return take(dst, n, true); }
size_t ShmChannel::peek(size_t, void* dst, size_t n) { return take(dst, n, false); }

size_t ShmChannel::take(void* dst, size_t n, bool advance) {
  in_->reader_sleeps.store(0, std::memory_order_relaxed);
  const uint64_t tail = in_->tail.load();
  if (read_at_ < tail) {
    const size_t k = static_cast<size_t>(std::min<uint64_t>({n, tail - read_at_, kRingBytes}));
    copy_out(static_cast<char*>(dst), in_bytes_, read_at_, k);
    if (advance) {
      read_at_ += k;
      in_->head.store(read_at_);
      if (in_->writer_sleeps.load()) ring_peer();
    }
    return k;
  }
  if (in_->aborted.load(std::memory_order_acquire)) return take_abort(static_cast<char*>(dst), n, advance);
  // Gone, and nothing it wrote before it went is left.
  if (peer_gone() && in_->tail.load() == tail && !in_->aborted.load()) throw ChannelLost("its process exited");
  return 0;
}

// The stream after the last ring byte of a peer that aborted: zeros for the rest of the frame it
// was writing, then the abort frame.
size_t ShmChannel::take_abort(char* dst, size_t n, bool advance) {
  const uint64_t at = in_->abort_at;
  const FrameHeader h{kFrameAbort, in_->abort_seq, 0, std::min<uint32_t>(in_->abort_len, kMaxAbortText), 0};
  const uint64_t end = at + sizeof h + h.len;
  size_t k = 0;
  for (uint64_t p = read_at_; k < n && p < end; ++p, ++k)
    dst[k] = p < at ? 0 : p < at + sizeof h ? reinterpret_cast<const char*>(&h)[p - at] : in_->abort_text[p - at - sizeof h];
  if (k == 0) throw ChannelLost("it aborted");  // and everything it said has been read
  if (advance) read_at_ += k;
  return k;
}

void ShmChannel::send_abort(uint32_t seq, const std::string& why) {
  if (!out_ || peer_bell_ < 0 || out_->aborted.load()) return;  // never joined: nobody reads it
  const std::string text = why.substr(0, kMaxAbortText);
  out_->abort_seq = seq;
  out_->abort_len = static_cast<uint32_t>(text.size());
  std::memcpy(out_->abort_text, text.data(), text.size());
  out_->abort_at = out_->tail.load(std::memory_order_relaxed) + unsent_in_frame_;
  out_->aborted.store(1);
  ring_peer();
}

void ShmChannel::arm(size_t, bool in, bool out, Waiter& w) {
  if (!in && !out) return;
  drain(my_bell_);
  if (in) in_->reader_sleeps.store(1);
  if (out) out_->writer_sleeps.store(1);
  // Looked at again after the flags are up: a move the peer made before it could see them.
  const bool readable = in && (in_->tail.load() != read_at_ || in_->aborted.load());
  const bool writable = out && out_->tail.load(std::memory_order_relaxed) - out_->head.load() < kRingBytes;
  if (readable || writable) {
    const char one = 1;
    (void)!::write(my_bell_, &one, 1);
  }
  w.add(my_bell_, true, false);
  if (peer_pidfd_ >= 0) w.add(peer_pidfd_, true, false);
}

}  // namespace unicc
