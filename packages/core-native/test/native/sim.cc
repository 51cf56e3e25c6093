#include "sim.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <tuple>

#include "memory/payload.h"

namespace unicc::test {

namespace {

enum class State { kWaiting, kInFlight, kDone };

struct Rank {
  const Schedule* s;
  std::vector<State> state;
  std::vector<size_t> ordinal;      // per step: its place among the sends to (receives from) its peer
  std::vector<std::vector<char>> snapshot;  // per send in flight: its bytes when it started
  std::vector<std::vector<char>> message;   // and the message made of them
  int32_t gates_open = 0;           // gates open in order, at random moments
  int32_t gates = 0;
};

std::string where(int rank, size_t step, const Step& s) {
  return "rank " + std::to_string(rank) + " step " + std::to_string(step) + " (peer " + std::to_string(s.peer) +
         ", offset " + std::to_string(s.offset) + ", " + std::to_string(s.bytes) + " bytes)";
}

}  // namespace

std::string simulate(const std::vector<Schedule>& schedules, std::vector<std::vector<char>>& buffers, DType t,
                     RedOp op, Wire wire, uint64_t seed) {
  const int n = static_cast<int>(schedules.size());
  std::vector<Rank> ranks(n);
  size_t left = 0;
  for (int r = 0; r < n; ++r) {
    Rank& k = ranks[r];
    k.s = &schedules[r];
    const size_t m = k.s->steps.size();
    k.state.assign(m, State::kWaiting);
    k.ordinal.resize(m);
    k.snapshot.resize(m);
    k.message.resize(m);
    std::map<std::pair<int, bool>, size_t> seen;
    for (size_t i = 0; i < m; ++i) {
      const Step& st = k.s->steps[i];
      if (st.peer < 0 || st.peer >= n || st.peer == r) return where(r, i, st) + ": bad peer";
      if (st.buffer != 0) return where(r, i, st) + ": the simulator holds one buffer per rank";
      if (st.offset + st.bytes > buffers[r].size()) return where(r, i, st) + ": outside the buffer";
      k.gates = std::max(k.gates, st.gate + 1);
      for (int32_t d : st.after)
        if (d < 0 || static_cast<size_t>(d) >= i) return where(r, i, st) + ": waits for a later step";
      k.ordinal[i] = seen[{st.peer, st.kind == Step::kSend}]++;
    }
    left += m;
  }
  // Messages in flight by (from, to, ordinal).
  std::map<std::tuple<int, int, size_t>, std::vector<char>> wires;
  std::mt19937_64 rng(seed);
  std::vector<char> stage;
  PayloadCoder coder(host_backend());
  while (left > 0) {
    struct Action { int rank; size_t step; };
    std::vector<Action> can;
    constexpr size_t kOpenGate = SIZE_MAX;
    for (int r = 0; r < n; ++r) {
      Rank& k = ranks[r];
      if (k.gates_open < k.gates) can.push_back({r, kOpenGate});
      for (size_t i = 0; i < k.state.size(); ++i) {
        const Step& st = k.s->steps[i];
        bool ready = st.gate < k.gates_open;
        for (int32_t d : st.after) ready = ready && k.state[d] == State::kDone;
        if (k.state[i] == State::kInFlight) can.push_back({r, i});
        if (k.state[i] != State::kWaiting || !ready) continue;
        if (st.kind == Step::kSend || wires.count({st.peer, r, k.ordinal[i]}) > 0) can.push_back({r, i});
      }
    }
    if (can.empty()) return "deadlock: " + std::to_string(left) + " steps can never run";
    const Action a = can[rng() % can.size()];
    Rank& k = ranks[a.rank];
    if (a.step == kOpenGate) {
      ++k.gates_open;
      continue;
    }
    const Step& st = k.s->steps[a.step];
    char* at = buffers[a.rank].data() + st.offset;
    if (st.kind == Step::kSend && k.state[a.step] == State::kWaiting) {
      const char* msg = coder.make(wire, at, st.bytes, st.round_source, op, stage);
      k.snapshot[a.step].assign(at, at + st.bytes);  // after rounding: what the bytes must stay
      k.message[a.step].assign(msg, msg + payload_bytes(wire, st.bytes));
      k.state[a.step] = State::kInFlight;
      continue;
    }
    if (st.kind == Step::kSend) {
      if (!std::equal(at, at + st.bytes, k.snapshot[a.step].begin()))
        return where(a.rank, a.step, st) + ": its bytes changed while the send was in flight";
      // A receiver has the whole message only once the sender has handed over its last byte.
      wires[{a.rank, st.peer, k.ordinal[a.step]}] = std::move(k.message[a.step]);
      k.state[a.step] = State::kDone;
      --left;
      continue;
    }
    auto msg = wires.find({st.peer, a.rank, k.ordinal[a.step]});
    if (msg->second.size() != payload_bytes(wire, st.bytes))
      return where(a.rank, a.step, st) + ": the matching send carries " + std::to_string(msg->second.size()) + " bytes";
    coder.apply(wire, msg->second.data(), at, st.bytes, st.kind == Step::kRecvReduce, st.received_first, t, op);
    wires.erase(msg);
    k.state[a.step] = State::kDone;
    --left;
  }
  if (!wires.empty()) return std::to_string(wires.size()) + " messages were never received";
  return "";
}

}  // namespace unicc::test
