// The client lane: a C interface through which a bridge's client (the Python client, by ctypes)
// runs its small collectives itself, in its own process, on a shared-memory group its bridge made
// for the clients of one host (Options::client_lane). A request there costs no hop to another
// process: on a 2-core host the two futex wakes of the command ring cost more than the collective.
// Requests on this lane are ordered among themselves, as each lane's are (the ring's are too).
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "algorithms/local.h"
#include "binding/ring_format.h"
#include "common/error.h"
#include "memory/user_buffer.h"
#include "transport/shm_group.h"

namespace {

using unicc::Coll;
using unicc::DType;
using unicc::RedOp;

struct Lane;

// One kind of request (collective, dtype, op, root, span check), prepared once: a call then passes
// only the buffer and its length, because each ctypes argument costs about 0.1 us.
struct Request {
  Lane* lane;
  int coll, dtype, op, root;
  bool check_span;
};

struct Lane {
  std::unique_ptr<unicc::ShmGroup> group;
  uint32_t seq = 0;
  std::string broken;  // the first failure: the group is aborted, later requests fail with it
  std::string error;   // the last call's failure, for unicc_lane_error
  std::vector<std::unique_ptr<Request>> requests;
};

// Keeps `what` for unicc_lane_error; the C interface's failure value.
int failure(Lane& lane, const std::string& what) {
  lane.error = what;
  return -1;
}

// Writes `what` for a caller that has no lane yet.
void failure(char* error, size_t error_bytes, const std::string& what) {
  if (error && error_bytes) {
    std::strncpy(error, what.c_str(), error_bytes - 1);
    error[error_bytes - 1] = 0;
  }
}

// The Desc every rank publishes, so that differing calls fail on every rank instead of mixing data.
unicc::Desc describe(Lane& lane, Coll coll, DType t, RedOp op, int root, uint64_t count) {
  unicc::Desc d;
  d.seq = lane.seq++;
  d.coll = static_cast<uint8_t>(coll);
  d.dtype = static_cast<uint8_t>(t);
  d.op = static_cast<uint8_t>(op);
  d.root = root;
  d.count = count;
  return d;
}

std::string check_request(const unicc::ShmGroup& g, int coll, const void* buf, uint64_t count, int dtype, int op,
                          int root, bool check_span) {
  if (coll == static_cast<int>(Coll::Allgather))
    return "the client lane runs allreduce, broadcast and barrier, not collective " + std::to_string(coll);
  // The ring's numbers (negative ones read as large, so as unknown).
  if (std::string bad = unicc::ring::code_error(coll, dtype, op); !bad.empty()) return bad;
  if (coll == static_cast<int>(Coll::Barrier)) return "";
  if (coll == static_cast<int>(Coll::Broadcast) && (root < 0 || root >= g.local_size()))
    return "broadcast root " + std::to_string(root) + " is not a rank of this world of " + std::to_string(g.local_size());
  const size_t esize = unicc::dtype_size(static_cast<DType>(dtype));
  if (count > g.in_bytes() / esize)
    return std::to_string(count) + " elements exceed the client lane's " + std::to_string(g.in_bytes()) + " bytes";
  // The reduction works on the caller's memory itself, as arrays of the element type.
  if (reinterpret_cast<uintptr_t>(buf) % esize) return "the buffer's address is not aligned to its elements";
  return check_span ? unicc::check_client_span(getpid(), reinterpret_cast<uintptr_t>(buf), count * esize) : "";
}

}  // namespace

extern "C" {

// Takes local_rank's place in the group at `path` (a descriptor the bridge holds: /proc/PID/fd/N).
// labels: each local rank's "rank R (host H", one per line. Null on failure, with `error` set.
void* unicc_lane_join(const char* path, int local_rank, int local_size, const char* labels, uint64_t piece_bytes,
                      int timeout_ms, char* error, size_t error_bytes) {
  try {
    std::vector<unicc::ShmGroup::Member> members;
    std::istringstream lines(labels ? labels : "");
    for (std::string line; std::getline(lines, line);) members.push_back({line});
    if (static_cast<int>(members.size()) != local_size)
      throw unicc::CommError("the client lane needs " + std::to_string(local_size) + " labels, got " +
                             std::to_string(members.size()));
    auto lane = std::make_unique<Lane>();
    lane->group = std::make_unique<unicc::ShmGroup>(path, unicc::ShmGroup::Open::Join, local_rank, std::move(members),
                                                    piece_bytes, timeout_ms);
    return lane.release();
  } catch (const std::exception& e) {
    failure(error, error_bytes, e.what());
    return nullptr;
  }
}

// A kind of request for unicc_lane_run (Coll, DType and RedOp numbers; root for a broadcast),
// valid until the lane is left; checked when it runs. check_span: first make sure both ends of the
// buffer can be read and written (four system calls, about as long as the collective itself:
// callers that pass a live tensor's memory skip it).
void* unicc_lane_prepare(void* handle, int coll, int dtype, int op, int root, int check_span) {
  Lane& lane = *static_cast<Lane*>(handle);
  lane.requests.push_back(std::make_unique<Request>(Request{&lane, coll, dtype, op, root, check_span != 0}));
  return lane.requests.back().get();
}

// The prepared collective on `count` elements at `buf`, in place; an average divides by the
// group's size (the lane serves one-host worlds). 0 on success, else -1 (unicc_lane_error says
// why); a failed lane fails every later request with the same message.
int unicc_lane_run(void* prepared, void* buf, uint64_t count) {
  const Request& r = *static_cast<Request*>(prepared);
  Lane& lane = *r.lane;
  unicc::ShmGroup& g = *lane.group;
  if (!lane.broken.empty()) return failure(lane, lane.broken);
  const std::string bad = check_request(g, r.coll, buf, count, r.dtype, r.op, r.root, r.check_span);
  if (!bad.empty()) return failure(lane, bad);  // refused before any round: the lane goes on
  try {
    const auto c = static_cast<Coll>(r.coll);
    const auto t = static_cast<DType>(r.dtype);
    const auto o = static_cast<RedOp>(r.op);
    const unicc::Desc d = describe(lane, c, t, o, r.root, c == Coll::Barrier ? 0 : count);
    if (c == Coll::Barrier) {
      unicc::local_barrier(g, d);
    } else if (c == Coll::Broadcast) {
      unicc::local_broadcast(g, d, buf, count * unicc::dtype_size(t), r.root);
    } else {
      unicc::local_allreduce(g, d, buf, count, t, o, g.in_bytes(), o == RedOp::Avg ? g.local_size() : 1);
    }
    return 0;
  } catch (const std::exception& e) {
    lane.broken = e.what();
    return failure(lane, lane.broken);
  }
}

// The last failed call's message (valid until the next call on the lane).
const char* unicc_lane_error(void* handle) { return static_cast<Lane*>(handle)->error.c_str(); }

void unicc_lane_leave(void* handle) { delete static_cast<Lane*>(handle); }

}  // extern "C"
