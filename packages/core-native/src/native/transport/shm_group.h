#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/collective.h"

namespace unicc {

// The ranks of one host, joined through one shared-memory segment.
//
// Every collective runs as a series of rounds that all local ranks execute in the same order.
// In round R a rank writes its "in" area, posts IN; owners write their "out" area, post OUT;
// readers post DONE when they no longer need anybody's areas of round R. Areas are double
// buffered by round parity, so round R+2 may overwrite them once every peer is DONE with R.
// Each rank publishes its progress as one 32-bit counter, which is also the futex word that
// waiters sleep on after a short look (bounded, and yielding the core where ranks share cores),
// so nobody spins long while a peer is descheduled.
class ShmGroup {
 public:
  enum Phase : uint32_t { IN = 1, OUT = 2, DONE = 3 };
  static constexpr int kMaxLocal = 64;

  struct Member {
    // "rank 3 (host h1, pid 1234)", used in error messages. Joining processes know their peers'
    // pids only from the segment: they give "rank 3 (host h1" and the pid is added when needed.
    std::string label;
  };

  // Create: the first rank of the host makes and sizes the segment (shm name `name`); Open: the
  // others open it by that name. Join: `name` is the path of a descriptor another process holds
  // on a made segment (/proc/PID/fd/N), and this process takes over local_rank's place in it: a
  // Python client running its own small collectives (binding/client_lane.cc). Peers then watch
  // this process's pid.
  enum class Open { Create, Existing, Join };
  ShmGroup(const std::string& name, Open how, int local_rank, std::vector<Member> members,
           size_t piece_bytes, int timeout_ms);
  ~ShmGroup();
  ShmGroup(const ShmGroup&) = delete;
  ShmGroup& operator=(const ShmGroup&) = delete;

  // Removes the name once every local rank has mapped it, so a crash leaves nothing behind.
  void unlink();
  // The segment's descriptor, held open for the group's life: what a joining process opens.
  int fd() const { return fd_; }

  int local_rank() const { return me_; }
  int local_size() const { return static_cast<int>(members_.size()); }
  size_t piece_bytes() const { return piece_; }
  size_t in_bytes() const { return piece_ * members_.size(); }

  // Starts the next round: waits until every peer is DONE with round R-2 (same buffers).
  uint64_t begin_round();
  void post(uint64_t round, Phase ph);
  void wait(int peer, uint64_t round, Phase ph);
  void wait_all(uint64_t round, Phase ph);
  // Never sleeps: whether begin_round would start the next round without waiting, and whether
  // every peer reaches phase ph of round within budget_ns (for a caller that must not block).
  bool round_free() const;
  bool arrived(uint64_t round, Phase ph, int64_t budget_ns) const;

  char* in_area(int lr, uint64_t round);
  char* out_area(int lr, uint64_t round);

  // Publishes this rank's request for a round and fails on every rank if any peer asked for
  // something else. Call after wait_all(round, IN).
  void publish_desc(uint64_t round, const Desc& d);
  void check_descs(uint64_t round);

  // First failure wins; everybody waiting wakes up and throws it.
  [[noreturn]] void fail(const std::string& msg);
  void abort(const std::string& msg);
  bool aborted() const;
  std::string abort_message() const;
  void throw_if_aborted() const;

 private:
  struct Header;
  struct RankHeader;
  bool reached(uint32_t value, uint32_t target) const {
    return static_cast<int32_t>(value - target) >= 0;
  }
  uint32_t target(uint64_t round, Phase ph) const {
    return static_cast<uint32_t>(round * 3 + ph);
  }
  // Looks at a peer's counter for up to budget_ns before a waiter sleeps (see the .cc).
  bool look(const RankHeader& h, uint32_t want, int64_t budget_ns) const;
  bool peer_alive(int lr) const;
  RankHeader& rh(int lr) const;
  void release_fd();
  std::string who(int lr) const;  // a member's label

  std::string name_;
  int me_;
  std::vector<Member> members_;
  size_t piece_;
  size_t slot_bytes_;
  size_t map_bytes_;
  int timeout_ms_;
  bool pids_in_labels_;
  bool spin_;  // a core per local rank: a waiter may spin before it yields
  uint64_t next_round_ = 0;
  char* base_ = nullptr;
  Header* hdr_ = nullptr;
  int fd_ = -1;
  bool unlinked_ = false;
};

}  // namespace unicc
