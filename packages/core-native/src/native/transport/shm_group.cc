#include "transport/shm_group.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/clock.h"
#include "common/error.h"
#include "common/process.h"
#include "transport/shm_file.h"

namespace unicc {

namespace {

constexpr uint64_t kMagic = 0x31636369'6e75ull;  // "unicc1"
constexpr size_t kPage = 4096;
constexpr int kSleepSliceMs = 50;      // how often a sleeping waiter looks at peers' health
// A waiter looks for its peer this long before it sleeps, spinning for the first kPauseNs where
// the host has a core per rank and giving its core away at every look after that.
constexpr int64_t kLookNs = 50'000;
constexpr int64_t kPauseNs = 5'000;

size_t round_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

void futex_wait(std::atomic<uint32_t>* word, uint32_t expected, int timeout_ms) {
  timespec ts{timeout_ms / 1000, (timeout_ms % 1000) * 1'000'000L};
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT, expected, &ts, nullptr, 0);
}

void futex_wake_all(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

int usable_cpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return CPU_COUNT(&set);
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

}  // namespace

struct ShmGroup::RankHeader {
  alignas(64) std::atomic<uint32_t> seq;
  std::atomic<uint32_t> sleepers;
  int32_t pid;
  Desc desc[2];  // by round parity, so a peer may still read the previous one
};

struct ShmGroup::Header {
  uint64_t magic;
  uint32_t local_size;
  uint32_t reserved;
  uint64_t piece_bytes;
  alignas(64) std::atomic<uint32_t> abort_state;  // 0 none, 1 being written, 2 published
  char abort_msg[1024];
  RankHeader ranks[kMaxLocal];
};

ShmGroup::ShmGroup(const std::string& name, Open how, int local_rank, std::vector<Member> members,
                   size_t piece_bytes, int timeout_ms)
    : name_(name), me_(local_rank), members_(std::move(members)), piece_(round_up(piece_bytes, 64)),
      timeout_ms_(timeout_ms), pids_in_labels_(how != Open::Join), spin_(static_cast<int>(members_.size()) <= usable_cpus()) {
  const int L = local_size();
  if (L < 1 || L > kMaxLocal)
    throw CommError("unicc supports 1 to " + std::to_string(kMaxLocal) + " ranks per host, got " +
                    std::to_string(L));
  slot_bytes_ = round_up(2 * (in_bytes() + piece_), kPage);
  map_bytes_ = round_up(sizeof(Header), kPage) + slot_bytes_ * L;

  if (me_ < 0 || me_ >= L) throw CommError("local rank " + std::to_string(me_) + " is outside the group of " + std::to_string(L));
  const bool create = how == Open::Create;
  const std::string where = how == Open::Join ? name : "/dev/shm" + name;
  const int fd = how == Open::Join ? ::open(name.c_str(), O_RDWR | O_CLOEXEC)
                                   : shm_open(name.c_str(), create ? (O_CREAT | O_EXCL | O_RDWR) : O_RDWR, 0600);
  if (fd < 0)
    throw CommError("cannot " + std::string(create ? "create" : "open") + " shared memory " + where + " on " +
                    who(me_) + ": " + errno_text() +
                    (create && errno == EEXIST ? std::string(" (") + kSharedNameTaken + ")" : ""));
  fd_ = fd;
  if (create) {
    const std::string why = reserve_shared_file(fd, map_bytes_);
    if (!why.empty()) {
      release_fd();
      shm_unlink(name.c_str());
      throw CommError("cannot size shared memory " + where + " to " + std::to_string(map_bytes_) + " bytes on " +
                      who(me_) + ": " + why);
    }
  }
  struct stat st{};
  if (fstat(fd, &st) != 0 || static_cast<size_t>(st.st_size) != map_bytes_) {
    release_fd();
    throw CommError("shared memory " + where + " has " + std::to_string(st.st_size) +
                    " bytes, expected " + std::to_string(map_bytes_) +
                    ": ranks of this host disagree on UNICC_SHM_PIECE_BYTES or the number of local ranks");
  }
  void* p = mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    const std::string why = errno_text();
    release_fd();
    throw CommError("cannot map shared memory " + where + ": " + why);
  }
  base_ = static_cast<char*>(p);
  hdr_ = reinterpret_cast<Header*>(base_);
  if (create) {
    // The segment is fresh (zero-filled); only identity fields need writing.
    hdr_->local_size = static_cast<uint32_t>(L);
    hdr_->piece_bytes = piece_;
    std::atomic_thread_fence(std::memory_order_release);
    hdr_->magic = kMagic;
  } else if (hdr_->magic != kMagic || hdr_->local_size != static_cast<uint32_t>(L) ||
             hdr_->piece_bytes != piece_) {
    munmap(base_, map_bytes_);
    release_fd();
    throw CommError("shared memory " + where + " was made for another layout: ranks of this host "
                    "disagree on UNICC_SHM_PIECE_BYTES or the number of local ranks");
  }
  rh(me_).pid = static_cast<int32_t>(getpid());
}

ShmGroup::~ShmGroup() {
  if (base_) munmap(base_, map_bytes_);
  release_fd();
}

std::string ShmGroup::who(int lr) const {
  if (pids_in_labels_) return members_[lr].label;
  // This process's own pid is known before the segment is mapped (an error while opening it).
  const int pid = lr == me_ ? static_cast<int>(getpid()) : rh(lr).pid;
  return members_[lr].label + ", pid " + std::to_string(pid) + ")";
}

void ShmGroup::release_fd() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void ShmGroup::unlink() {
  if (!unlinked_) shm_unlink(name_.c_str());
  unlinked_ = true;
}

ShmGroup::RankHeader& ShmGroup::rh(int lr) const { return hdr_->ranks[lr]; }

char* ShmGroup::in_area(int lr, uint64_t round) {
  return base_ + round_up(sizeof(Header), kPage) + slot_bytes_ * lr + (round & 1) * (in_bytes() + piece_);
}

char* ShmGroup::out_area(int lr, uint64_t round) { return in_area(lr, round) + in_bytes(); }

uint64_t ShmGroup::begin_round() {
  const uint64_t r = next_round_++;
  if (r >= 2) wait_all(r - 2, DONE);
  else throw_if_aborted();
  return r;
}

void ShmGroup::post(uint64_t round, Phase ph) {
  RankHeader& h = rh(me_);
  h.seq.store(target(round, ph), std::memory_order_seq_cst);
  if (h.sleepers.load(std::memory_order_seq_cst) != 0) futex_wake_all(&h.seq);
}

bool ShmGroup::look(const RankHeader& h, uint32_t want, int64_t budget_ns) const {
  auto there = [&] { return reached(h.seq.load(std::memory_order_acquire), want); };
  // A peer running on another core answers within a short spin. After that (at once where
  // ranks share cores) each look gives the core away: the peer may be waiting for this very
  // core (ranks share cores, or other processes crowd them), and spinning on would delay it.
  const auto start = Clock::now(), until = start + std::chrono::nanoseconds(budget_ns),
             yield_from = start + std::chrono::nanoseconds(spin_ ? std::min(budget_ns, kPauseNs) : 0);
  const int checks = spin_ ? 16 : 1;  // where ranks share cores, every check (one line read) is a look
  for (;;) {
    for (int k = 0; k < checks; ++k) {
      if (there()) return true;
      cpu_relax();
    }
    const auto now = Clock::now();
    if (now > until) return false;
    if (now > yield_from) sched_yield();
  }
}

bool ShmGroup::round_free() const {
  if (next_round_ < 2) return true;
  const uint32_t want = target(next_round_ - 2, DONE);
  for (int p = 0; p < local_size(); ++p)
    if (p != me_ && !reached(rh(p).seq.load(std::memory_order_acquire), want)) return false;
  return true;
}

bool ShmGroup::arrived(uint64_t round, Phase ph, int64_t budget_ns) const {
  const auto until = Clock::now() + std::chrono::nanoseconds(budget_ns);
  for (int p = 0; p < local_size(); ++p) {
    const int64_t left = std::chrono::duration_cast<std::chrono::nanoseconds>(until - Clock::now()).count();
    if (p != me_ && !look(rh(p), target(round, ph), left)) return false;
  }
  return true;
}

void ShmGroup::wait(int peer, uint64_t round, Phase ph) {
  RankHeader& h = rh(peer);
  const uint32_t want = target(round, ph);
  if (reached(h.seq.load(std::memory_order_acquire), want)) return;
  throw_if_aborted();
  if (look(h, want, kLookNs)) return;
  const int64_t started = now_ms();
  int64_t last_check = started;
  for (;;) {
    h.sleepers.fetch_add(1, std::memory_order_seq_cst);
    const uint32_t cur = h.seq.load(std::memory_order_seq_cst);
    if (!reached(cur, want) && !aborted()) futex_wait(&h.seq, cur, kSleepSliceMs);
    h.sleepers.fetch_sub(1, std::memory_order_seq_cst);
    if (reached(h.seq.load(std::memory_order_acquire), want)) return;
    throw_if_aborted();
    const int64_t now = now_ms();
    if (now - last_check >= kSleepSliceMs) {
      last_check = now;
      if (!peer_alive(peer))
        fail(who(peer) + " died (its process is gone); detected by " + who(me_) +
             ". Look at that rank's own output for the cause.");
      if (now - started > timeout_ms_)
        fail(who(peer) + " did not reach the collective within " +
             std::to_string(timeout_ms_ / 1000.0).substr(0, 6) + " s (UNICC_TIMEOUT_S); detected by " +
             who(me_) + ". Check that every rank calls the same collectives in the same order.");
    }
  }
}

void ShmGroup::wait_all(uint64_t round, Phase ph) {
  for (int p = 0; p < local_size(); ++p)
    if (p != me_) wait(p, round, ph);
  throw_if_aborted();
}

void ShmGroup::publish_desc(uint64_t round, const Desc& d) { rh(me_).desc[round & 1] = d; }

void ShmGroup::check_descs(uint64_t round) {
  const Desc& mine = rh(me_).desc[round & 1];
  for (int p = 0; p < local_size(); ++p) {
    const Desc& theirs = rh(p).desc[round & 1];
    if (p != me_ && theirs != mine)
      fail("ranks called different collectives: " + who(me_) + " called " + mine.str() +
           " but " + who(p) + " called " + theirs.str() +
           ". Every rank must call the same collectives, in the same order, with the same sizes.");
  }
}

bool ShmGroup::peer_alive(int lr) const {
  const pid_t pid = rh(lr).pid;
  if (pid <= 0) return true;  // not yet registered; the timeout still bounds the wait
  return process_alive(pid);
}

void ShmGroup::abort(const std::string& msg) {
  uint32_t expected = 0;
  if (hdr_->abort_state.compare_exchange_strong(expected, 1)) {
    std::strncpy(hdr_->abort_msg, msg.c_str(), sizeof(hdr_->abort_msg) - 1);
    hdr_->abort_msg[sizeof(hdr_->abort_msg) - 1] = 0;
    hdr_->abort_state.store(2, std::memory_order_release);
  }
  for (int p = 0; p < local_size(); ++p) futex_wake_all(&rh(p).seq);
}

void ShmGroup::fail(const std::string& msg) {
  abort(msg);
  throw CommError(abort_message());
}

bool ShmGroup::aborted() const { return hdr_->abort_state.load(std::memory_order_acquire) != 0; }

std::string ShmGroup::abort_message() const {
  // The writer publishes within microseconds; wait for it so everybody reports the same cause.
  for (int i = 0; i < 100000 && hdr_->abort_state.load(std::memory_order_acquire) == 1; ++i) sched_yield();
  return std::string(hdr_->abort_msg);
}

void ShmGroup::throw_if_aborted() const {
  if (aborted()) throw CommError(abort_message());
}

}  // namespace unicc
