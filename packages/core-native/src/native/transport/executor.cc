#include "transport/executor.h"

#include <unistd.h>

#include <algorithm>

#include "common/clock.h"
#include "common/error.h"
#include "memory/payload.h"
#include "transport/tcp.h"

namespace unicc {

namespace {

// One lane's outgoing frame.
struct Out {
  int32_t step = -1;  // the send it carries, or -1 when idle
  size_t off = 0;     // bytes of the frame (header + payload) gone out
  size_t len = 0;     // payload bytes
  FrameHeader hdr{};
  const char* payload = nullptr;
  std::vector<char> stage;  // the encoded payload (16-bit wire)
};

// One lane's incoming frame.
struct In {
  bool parked = false;  // the next frame belongs to a later collective: leave it in the lane
  size_t off = 0;       // bytes of the current frame read
  FrameHeader hdr{};
  int32_t step = -1;
  bool direct = false;    // the payload lands in place (an exact copy the buffer is ready for)
  std::vector<char> tmp;  // else it is staged here
};

struct Peer {
  Channel* ch = nullptr;
  std::vector<int32_t> sends;  // steps, by their place among this peer's messages
  std::vector<int32_t> recvs;  // the same
  std::vector<char> arrived;   // per receive
  std::vector<char> started;   // per send
  size_t first_unstarted = 0, sends_done = 0, recvs_in = 0;
  std::vector<Out> outs;
  std::vector<In> ins;
};

class Run {
 public:
  Run(const Schedule& s, const std::vector<char*>& bufs, const std::vector<Channel*>& channels, const ExecContext& cx)
      : s_(s), bufs_(bufs), cx_(cx), hash_(cx.desc.hash()), done_(s.steps.size(), 0) {
    if (!cx_.buffer_memory.empty() && cx_.buffer_memory.size() != bufs_.size())
      throw CommError(cx_.self_label + ": " + std::to_string(cx_.buffer_memory.size()) + " memories for " +
                      std::to_string(bufs_.size()) + " buffers during " + cx_.desc.str());
    for (size_t b = 0; b < (cx_.buffer_memory.empty() ? 1 : bufs_.size()); ++b)
      coders_.emplace_back(cx_.buffer_memory.empty() ? *cx_.memory : *cx_.buffer_memory[b]);
    std::vector<int> index(static_cast<size_t>(s.size), -1);
    for (size_t i = 0; i < s.steps.size(); ++i) {
      const Step& st = s.steps[i];
      if (st.buffer >= bufs_.size()) throw CommError(cx_.self_label + ": a schedule step names buffer " + std::to_string(st.buffer) + " of " + std::to_string(bufs_.size()) + " during " + cx_.desc.str());
      int& k = index.at(static_cast<size_t>(st.peer));
      if (k < 0) {
        k = static_cast<int>(peers_.size());
        peers_.emplace_back();
        peers_.back().ch = channels.at(static_cast<size_t>(st.peer));
        if (!peers_.back().ch) throw CommError(cx_.self_label + ": no connection to rank " + std::to_string(st.peer) + " of its group for " + cx_.desc.str());
      }
      (st.kind == Step::kSend ? peers_[k].sends : peers_[k].recvs).push_back(static_cast<int32_t>(i));
    }
    for (Peer& p : peers_) {
      p.arrived.assign(p.recvs.size(), 0);
      p.started.assign(p.sends.size(), 0);
      p.outs.resize(p.ch->lanes());
      p.ins.resize(p.ch->lanes());
    }
  }

  void go() {
    int64_t last_progress = now_ms();
    while (completed_ < s_.steps.size()) {
      hand_out_sends();
      waiter_.clear();
      for (Peer& p : peers_)
        for (size_t j = 0; j < p.outs.size(); ++j) p.ch->arm(j, wants_in(p, j), p.outs[j].step >= 0, waiter_);
      if (cx_.wake_fd >= 0) waiter_.add(cx_.wake_fd, true, false);
      waiter_.wait(100);
      bool progressed = drain_wake();
      for (Peer& p : peers_)
        for (size_t j = 0; j < p.outs.size(); ++j) {
          if (p.outs[j].step >= 0 && push(p, j)) progressed = true;
          if (wants_in(p, j) && pull(p, j)) progressed = true;
        }
      if (apply_held()) progressed = true;
      if (cx_.check_abort) cx_.check_abort();
      const int64_t now = now_ms();
      if (progressed) last_progress = now;
      else if (now - last_progress > cx_.timeout_ms) stalled();
    }
  }

 private:
  char* at(const Step& st) const { return bufs_[st.buffer] + st.offset; }
  // The coder of the memory a step's buffer lives in.
  PayloadCoder& coder(const Step& st) { return coders_[cx_.buffer_memory.empty() ? 0 : st.buffer]; }
  MemoryBackend& memory(const Step& st) const {
    return cx_.buffer_memory.empty() ? *cx_.memory : *cx_.buffer_memory[st.buffer];
  }

  // A gate opened: its steps may be ready now.
  bool drain_wake() {
    if (cx_.wake_fd < 0) return false;
    uint64_t n = 0;
    return ::read(cx_.wake_fd, &n, sizeof n) == static_cast<ssize_t>(sizeof n);
  }

  bool ready(int32_t step) const {
    const Step& st = s_.steps[static_cast<size_t>(step)];
    if (st.gate >= 0 && cx_.gate_open && !cx_.gate_open(st.gate)) return false;
    for (int32_t d : st.after)
      if (!done_[static_cast<size_t>(d)]) return false;
    return true;
  }
  void complete(int32_t step) {
    done_[static_cast<size_t>(step)] = 1;
    ++completed_;
    if (cx_.on_done) cx_.on_done(step);
  }
  bool packed() const { return cx_.wire != Wire::Exact; }
  bool wants_in(const Peer& p, size_t j) const { return p.recvs_in < p.recvs.size() && !p.ins[j].parked; }

  // The peer's earliest send that may start now, or -1. Looks a bounded way past the first one
  // not started, so that a long batch does not make every idle moment a scan of all of it.
  long next_ready_send(Peer& p) const {
    constexpr size_t kLookAhead = 64;
    while (p.first_unstarted < p.sends.size() && p.started[p.first_unstarted]) ++p.first_unstarted;
    const size_t end = std::min(p.sends.size(), p.first_unstarted + kLookAhead);
    for (size_t i = p.first_unstarted; i < end; ++i)
      if (!p.started[i] && ready(p.sends[i])) return static_cast<long>(i);
    return -1;
  }

  // Each idle lane takes the peer's earliest ready send.
  void hand_out_sends() {
    for (Peer& p : peers_)
      for (size_t j = 0; j < p.outs.size(); ++j) {
        if (p.outs[j].step >= 0) continue;
        const long i = next_ready_send(p);
        if (i < 0) break;
        const int32_t step = p.sends[static_cast<size_t>(i)];
        p.started[static_cast<size_t>(i)] = 1;
        Out& o = p.outs[j];
        const Step& st = s_.steps[static_cast<size_t>(step)];
        o.step = step;
        o.off = 0;
        o.len = payload_bytes(cx_.wire, st.bytes);
        o.payload = coder(st).make(cx_.wire, at(st), st.bytes, st.round_source, cx_.op, o.stage);
        o.hdr = {kFrameData, cx_.desc.seq, hash_, static_cast<uint32_t>(o.len), static_cast<uint32_t>(i)};
      }
  }

  // Writes what the lane takes; true if any byte went out.
  bool push(Peer& p, size_t j) {
    Out& o = p.outs[j];
    const size_t total = sizeof(FrameHeader) + o.len;
    iovec iov[2];
    int n = 0;
    if (o.off < sizeof(FrameHeader)) iov[n++] = {reinterpret_cast<char*>(&o.hdr) + o.off, sizeof(FrameHeader) - o.off};
    const size_t pay_off = o.off > sizeof(FrameHeader) ? o.off - sizeof(FrameHeader) : 0;
    if (o.len > pay_off) iov[n++] = {const_cast<char*>(o.payload) + pay_off, o.len - pay_off};
    size_t k = 0;
    try {
      k = p.ch->write(j, iov, n);
    } catch (const ChannelLost& e) {
      lost(*p.ch, "sending to", e.what());
    }
    o.off += k;
    p.ch->set_unsent(j, o.off == 0 || o.off == total ? 0 : total - o.off);
    if (o.off < total) return k > 0;
    complete(o.step);
    ++p.sends_done;
    o.step = -1;
    return true;
  }

  // Reads whole frames while the lane has them; true if any byte came in.
  bool pull(Peer& p, size_t j) {
    try {
      return pull_frames(p, j);
    } catch (const ChannelLost& e) {
      lost(*p.ch, "receiving from", e.what());
    }
  }

  bool pull_frames(Peer& p, size_t j) {
    In& in = p.ins[j];
    Channel& ch = *p.ch;
    bool any = false;
    while (p.recvs_in < p.recvs.size() && !in.parked) {
      if (in.off == 0) {
        // Look at a whole header before taking it: with several lanes, a peer that is ahead may
        // already send the next collective's frames on a lane this one has finished with.
        if (ch.peek(j, &in.hdr, sizeof(FrameHeader)) < sizeof(FrameHeader)) break;
        if (in.hdr.type == kFrameData && static_cast<int32_t>(in.hdr.seq - cx_.desc.seq) > 0) {
          in.parked = true;
          break;
        }
      }
      if (in.off < sizeof(FrameHeader)) {
        const size_t k = ch.read(j, reinterpret_cast<char*>(&in.hdr) + in.off, sizeof(FrameHeader) - in.off);
        if (k == 0) break;
        in.off += k;
        any = true;
        if (in.off < sizeof(FrameHeader)) continue;
        check_header(p, j);
        in.step = p.recvs[in.hdr.index];
        const Step& st = s_.steps[static_cast<size_t>(in.step)];
        in.direct = !packed() && st.kind == Step::kRecv && memory(st).host_addressable() && ready(in.step);
        if (!in.direct) in.tmp.resize(in.hdr.len);
      }
      const size_t pay_off = in.off - sizeof(FrameHeader), want = in.hdr.len - pay_off;
      if (want > 0) {
        const Step& st = s_.steps[static_cast<size_t>(in.step)];
        char* dst = (in.direct ? at(st) : in.tmp.data()) + pay_off;
        const size_t k = ch.read(j, dst, want);
        if (k == 0) break;
        in.off += k;
        any = true;
        if (k < want) continue;
      }
      arrived(p, in);
    }
    return any;
  }

  void arrived(Peer& p, In& in) {
    p.arrived[in.hdr.index] = 1;
    ++p.recvs_in;
    in.off = 0;
    if (in.direct) {
      complete(in.step);
    } else if (ready(in.step)) {
      apply(in.step, in.tmp.data());
    } else {
      held_.emplace_back(in.step, std::move(in.tmp));
      in.tmp = {};
    }
  }

  void apply(int32_t step, const char* msg) {
    const Step& st = s_.steps[static_cast<size_t>(step)];
    coder(st).apply(cx_.wire, msg, at(st), st.bytes, st.kind == Step::kRecvReduce, st.received_first, cx_.dtype, cx_.op);
    complete(step);
  }

  // Messages that came before their receive could touch the buffer, applied once it can.
  bool apply_held() {
    bool any = false;
    for (bool again = true; again;) {
      again = false;
      for (size_t i = 0; i < held_.size(); ++i) {
        if (!ready(held_[i].first)) continue;
        apply(held_[i].first, held_[i].second.data());
        held_.erase(held_.begin() + static_cast<long>(i));
        any = again = true;
        break;
      }
    }
    return any;
  }

  void check_header(Peer& p, size_t j) {
    const FrameHeader& h = p.ins[j].hdr;
    Channel& c = *p.ch;
    const FrameCheck verdict = check_frame_header(h, cx_.desc.seq, hash_, p.recvs.size());
    if (verdict == FrameCheck::kAbort) throw CommError(abort_reason(p, j));
    if (verdict == FrameCheck::kCorrupt)
      throw CommError("corrupt data from " + c.label() + " during " + cx_.desc.str() + " on " + cx_.self_label +
                      ": bad frame header");
    // kData promises the index is in range; a message already in, or of another size, is a mismatch too.
    if (verdict == FrameCheck::kMismatch || p.arrived[h.index] ||
        h.len != payload_bytes(cx_.wire, s_.steps[static_cast<size_t>(p.recvs[h.index])].bytes))
      throw CommError("ranks called different collectives: " + cx_.self_label + " called " + cx_.desc.str() +
                      " but " + c.label() + " sent data for another request (collective #" + std::to_string(h.seq) +
                      ", chunk " + std::to_string(h.index) + " of " + std::to_string(h.len) +
                      " bytes). Every rank must call the same collectives, in the same order, with the "
                      "same sizes.");
  }

  // The peer failed and says why; read its reason (bounded) and pass it on unchanged.
  std::string abort_reason(Peer& p, size_t j) {
    std::string text(std::min<uint32_t>(p.ins[j].hdr.len, kMaxAbortText), '\0');
    size_t got = 0;
    const int64_t deadline = now_ms() + 1000;
    try {
      while (got < text.size() && now_ms() < deadline) {
        const size_t k = p.ch->read(j, text.data() + got, text.size() - got);
        got += k;
        if (k > 0) continue;
        Waiter w;
        p.ch->arm(j, true, false, w);
        w.wait(100);
      }
    } catch (const ChannelLost&) {
    }
    text.resize(got);
    return text.empty() ? p.ch->label() + " aborted" : text;
  }

  [[noreturn]] void lost(Channel& c, const char* doing, const std::string& why) {
    throw CommError("lost " + c.label() + " while " + doing + " it during " + cx_.desc.str() + " (" + why +
                    "): it died, was killed, or its host became unreachable; detected by " + cx_.self_label);
  }

  [[noreturn]] void stalled() {
    // Name a peer we still wait to hear from, else one we still send to.
    const Channel* c = nullptr;
    for (const Peer& p : peers_)
      if (!c && p.recvs_in < p.recvs.size()) c = p.ch;
    for (const Peer& p : peers_)
      if (!c && p.sends_done < p.sends.size()) c = p.ch;
    throw CommError((c ? c->label() : std::string("a peer")) + " made no progress for " +
                    std::to_string(cx_.timeout_ms / 1000) + " s (UNICC_TIMEOUT_S) during " + cx_.desc.str() +
                    "; detected by " + cx_.self_label + ". Its host may be unreachable, or it stopped calling collectives.");
  }

  const Schedule& s_;
  const std::vector<char*>& bufs_;
  const ExecContext& cx_;
  uint32_t hash_;
  std::vector<Peer> peers_;
  std::vector<char> done_;
  size_t completed_ = 0;
  std::vector<std::pair<int32_t, std::vector<char>>> held_;
  std::vector<PayloadCoder> coders_;  // one, or one per buffer (ExecContext::buffer_memory)
  Waiter waiter_;
};

}  // namespace

void execute(const Schedule& s, const std::vector<char*>& bufs, const std::vector<Channel*>& peers,
             const ExecContext& cx) {
  if (s.steps.empty()) return;
  Run(s, bufs, peers, cx).go();
}

void execute(const Schedule& s, char* buf, const std::vector<Channel*>& peers, const ExecContext& cx) {
  execute(s, std::vector<char*>{buf}, peers, cx);
}

}  // namespace unicc
