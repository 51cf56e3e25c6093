#include "algorithms/ring.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>

#include "algorithms/partition.h"
#include "common/clock.h"
#include "common/error.h"

namespace unicc {

namespace {

struct Send {
  const char* ptr;
  size_t len;
  long after;  // index of the receive that must complete first, or -1
  // 16-bit wire: also round the source through the wire format, so that the rank that owns a
  // reduced block keeps exactly the values the others receive.
  bool round_source = false;
};

struct Recv {
  char* ptr;
  size_t len;
  bool reduce;
};

// Moves a schedule of chunks around the ring: sends to the right, receives from the left, all at
// once in one poll loop, each send waiting only for the receive it forwards. With several streams
// per neighbour, the next chunk goes to whichever stream has finished its last one, so a stream
// the network serves faster carries more; frames name their chunk, so they may arrive in any order.
class RingRun {
 public:
  RingRun(Ring& r, const Desc& d, DType t, RedOp op, Wire wire = Wire::Exact)
      : r_(r), d_(d), hash_(d.hash()), t_(t), op_(op), wire_(wire) {}

  void run(const std::vector<Send>& sends, const std::vector<Recv>& recvs) {
    const size_t S = r_.right.size();
    size_t max_recv = 0, max_send = 0;
    for (const Recv& rv : recvs) max_recv = std::max(max_recv, on_wire(rv.len));
    for (const Send& sd : sends) max_send = std::max(max_send, on_wire(sd.len));
    std::vector<Out> outs(S);
    std::vector<In> ins(S);
    for (Out& o : outs) if (packed()) o.stage.resize(max_send);
    for (In& in : ins) in.tmp.resize(max_recv);
    std::vector<char> received(recvs.size(), 0);
    size_t next_send = 0, sends_done = 0, recvs_done = 0;
    const bool shared = r_.left[0] == r_.right[0];  // two ranks: one socket per stream both ways
    std::vector<pollfd> fds;
    int64_t last_progress = now_ms();
    while (sends_done < sends.size() || recvs_done < recvs.size()) {
      // Hand out chunks, in order, to idle streams.
      for (size_t j = 0; j < S && next_send < sends.size(); ++j) {
        const Send& s = sends[next_send];
        if (outs[j].active >= 0 || (s.after >= 0 && !received[s.after])) continue;
        start_send(outs[j], next_send, s);
        ++next_send;
      }
      fds.clear();
      for (size_t j = 0; j < S; ++j) {
        const bool want_out = outs[j].active >= 0;
        const bool want_in = recvs_done < recvs.size() && !ins[j].parked;
        if (shared) {
          fds.push_back({r_.left[j]->fd(), static_cast<short>((want_in ? POLLIN : 0) | (want_out ? POLLOUT : 0)), 0});
        } else {
          if (want_in) fds.push_back({r_.left[j]->fd(), POLLIN, 0});
          if (want_out) fds.push_back({r_.right[j]->fd(), POLLOUT, 0});
        }
      }
      int rc = poll(fds.data(), fds.size(), 100);
      if (rc < 0 && errno != EINTR) throw CommError("poll failed: " + std::string(std::strerror(errno)));
      bool progressed = false;
      for (size_t j = 0; j < S; ++j) {
        if (outs[j].active >= 0 && push(outs[j], *r_.right[j], sends[outs[j].active])) {
          progressed = true;
          if (outs[j].active < 0) ++sends_done;
        }
        if (recvs_done < recvs.size() && pull(ins[j], *r_.left[j], recvs, received, recvs_done)) progressed = true;
      }
      if (r_.check_abort) r_.check_abort();
      const int64_t now = now_ms();
      if (progressed) last_progress = now;
      else if (now - last_progress > r_.timeout_ms) {
        Conn& c = recvs_done < recvs.size() ? *r_.left[0] : *r_.right[0];
        throw CommError(c.label() + " made no progress for " + std::to_string(r_.timeout_ms / 1000) +
                        " s (UNICC_TIMEOUT_S) during " + d_.str() + "; detected by " + r_.self_label +
                        ". Its host may be unreachable, or it stopped calling collectives.");
      }
    }
  }

 private:
  struct Out {
    long active = -1;  // index of the send this stream carries, or -1 when idle
    size_t off = 0;    // bytes of its frame (header + payload) gone out
    size_t len = 0;    // payload bytes on the wire
    FrameHeader hdr{};
    std::vector<char> stage;  // the encoded payload (16-bit wire)
  };
  struct In {
    bool parked = false;  // the next frame belongs to a later collective: leave it on the socket
    size_t off = 0;  // bytes of the current frame read
    FrameHeader hdr{};
    std::vector<char> tmp;  // a payload that is reduced or decoded into place
  };

  void start_send(Out& o, size_t index, const Send& s) {
    o.active = static_cast<long>(index);
    o.off = 0;
    o.len = on_wire(s.len);
    o.hdr = {kFrameData, d_.seq, hash_, static_cast<uint32_t>(o.len), static_cast<uint32_t>(index)};
    if (packed()) {
      const size_t n = s.len / 4;
      wire16_encode(wire_, reinterpret_cast<const float*>(s.ptr), n, o.stage.data());
      if (s.round_source)
        wire16_decode(wire_, o.stage.data(), n, reinterpret_cast<float*>(const_cast<char*>(s.ptr)), false, op_);
    }
  }

  // Writes what the socket takes; true if any byte went out.
  bool push(Out& o, Conn& c, const Send& s) {
    const char* payload = packed() ? o.stage.data() : s.ptr;
    const size_t total = sizeof(FrameHeader) + o.len;
    iovec iov[2];
    int n = 0;
    if (o.off < sizeof(FrameHeader)) iov[n++] = {reinterpret_cast<char*>(&o.hdr) + o.off, sizeof(FrameHeader) - o.off};
    const size_t pay_off = o.off > sizeof(FrameHeader) ? o.off - sizeof(FrameHeader) : 0;
    if (o.len > pay_off) iov[n++] = {const_cast<char*>(payload) + pay_off, o.len - pay_off};
    msghdr mh{};
    mh.msg_iov = iov;
    mh.msg_iovlen = n;
    const ssize_t k = n ? sendmsg(c.fd(), &mh, MSG_NOSIGNAL | MSG_DONTWAIT) : 0;
    if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) lost(c, "sending to", std::strerror(errno));
    if (k > 0) o.off += static_cast<size_t>(k);
    c.unsent_in_frame = o.off == 0 ? 0 : total - o.off;
    if (o.off == total) {
      o.active = -1;
      c.unsent_in_frame = 0;
    }
    return k > 0 || o.active < 0;
  }

  // Reads whole frames while data is there; true if any byte came in.
  bool pull(In& in, Conn& c, const std::vector<Recv>& recvs, std::vector<char>& received, size_t& done) {
    bool any = false;
    while (done < recvs.size() && !in.parked) {
      if (in.off == 0) {
        // Look at a whole header before taking it: with several streams, a neighbour that is
        // ahead may already send the next collective's chunks on a stream this one has finished.
        const ssize_t k = recv(c.fd(), &in.hdr, sizeof(FrameHeader), MSG_PEEK | MSG_DONTWAIT);
        if (k == 0) lost(c, "receiving from", "connection closed");
        if (k < 0) {
          if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
          lost(c, "receiving from", std::strerror(errno));
        }
        if (static_cast<size_t>(k) < sizeof(FrameHeader)) break;
        if (in.hdr.type == kFrameData && static_cast<int32_t>(in.hdr.seq - d_.seq) > 0) {
          in.parked = true;
          break;
        }
      }
      const bool in_header = in.off < sizeof(FrameHeader);
      const Recv* rv = in_header ? nullptr : &recvs[in.hdr.index];
      const bool staged = !in_header && (rv->reduce || packed());
      const size_t pay_off = in_header ? 0 : in.off - sizeof(FrameHeader);
      char* dst = in_header ? reinterpret_cast<char*>(&in.hdr) + in.off : (staged ? in.tmp.data() : rv->ptr) + pay_off;
      const size_t want = in_header ? sizeof(FrameHeader) - in.off : in.hdr.len - pay_off;
      if (want > 0) {
        const ssize_t k = recv(c.fd(), dst, want, MSG_DONTWAIT);
        if (k == 0) lost(c, "receiving from", "connection closed");
        if (k < 0) {
          if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
          lost(c, "receiving from", std::strerror(errno));
        }
        in.off += static_cast<size_t>(k);
        any = true;
        if (static_cast<size_t>(k) < want) continue;
        if (in_header) {
          check_header(in.hdr, c, recvs, received);
          continue;
        }
      }
      rv = &recvs[in.hdr.index];
      if (packed()) wire16_decode(wire_, in.tmp.data(), rv->len / 4, reinterpret_cast<float*>(rv->ptr), rv->reduce, op_);
      else if (rv->reduce) reduce(rv->ptr, rv->ptr, in.tmp.data(), rv->len / dtype_size(t_), t_, op_);
      received[in.hdr.index] = 1;
      ++done;
      in.off = 0;
    }
    return any;
  }

  [[noreturn]] void lost(Conn& c, const char* doing, const std::string& why) {
    throw CommError("lost " + c.label() + " while " + doing + " it during " + d_.str() + " (" + why +
                    "): it died, was killed, or its host became unreachable; detected by " + r_.self_label);
  }

  void check_header(const FrameHeader& h, Conn& c, const std::vector<Recv>& recvs, const std::vector<char>& received) {
    if (h.type == kFrameAbort) {
      // The peer failed and says why; read its reason (bounded) and pass it on unchanged.
      std::string text(std::min<uint32_t>(h.len, kMaxAbortText), '\0');
      size_t got = 0;
      const int64_t deadline = now_ms() + 1000;
      while (got < text.size() && now_ms() < deadline) {
        const ssize_t k = recv(c.fd(), text.data() + got, text.size() - got, MSG_DONTWAIT);
        if (k > 0) got += static_cast<size_t>(k);
        else if (k == 0 || (errno != EAGAIN && errno != EINTR)) break;
        else wait_fd(c.fd(), POLLIN, 100);
      }
      text.resize(got);
      throw CommError(text.empty() ? c.label() + " aborted" : text);
    }
    if (h.type != kFrameData)
      throw CommError("corrupt data from " + c.label() + " during " + d_.str() + " on " + r_.self_label +
                      ": bad frame header");
    const bool known = h.index < recvs.size() && !received[h.index];
    if (h.seq != d_.seq || h.hash != hash_ || !known || h.len != on_wire(recvs[h.index].len))
      throw CommError("ranks called different collectives: " + r_.self_label + " called " + d_.str() + " but " +
                      c.label() + " sent data for another request (collective #" + std::to_string(h.seq) +
                      ", chunk " + std::to_string(h.index) + " of " + std::to_string(h.len) +
                      " bytes). Every rank must call the same collectives, in the same order, with the "
                      "same sizes.");
  }

  bool packed() const { return wire_ != Wire::Exact; }
  size_t on_wire(size_t bytes) const { return packed() ? wire16_bytes(bytes / 4) : bytes; }

  Ring& r_;
  const Desc& d_;
  uint32_t hash_;
  DType t_;
  RedOp op_;
  Wire wire_;
};

// Chunk c of block b, both in elements.
struct Chunking {
  Partition blocks;
  size_t chunk_elems;
  size_t chunks;  // per block, the same for every block
  Chunking(size_t count, size_t parts, size_t chunk_elems_)
      : blocks{count, parts}, chunk_elems(std::max<size_t>(1, chunk_elems_)),
        chunks(std::max<size_t>(1, ceil_div(blocks.len(0), chunk_elems))) {}
  size_t start(size_t b, size_t c) const { return blocks.start(b) + std::min(blocks.len(b), c * chunk_elems); }
  size_t len(size_t b, size_t c) const {
    const size_t s = std::min(blocks.len(b), c * chunk_elems);
    return std::min(blocks.len(b) - s, chunk_elems);
  }
};

// Chunks of at most chunk_bytes, but small enough that a block keeps every stream busy.
size_t chunk_elems(const Ring& r, size_t block_elems, size_t es) {
  constexpr size_t kMinChunkBytes = 64 << 10;
  const size_t per_stream = ceil_div(block_elems, r.right.size() ? r.right.size() : 1);
  return std::max<size_t>(1, std::min(r.chunk_bytes, std::max(kMinChunkBytes, per_stream * es)) / es);
}

size_t mod(long a, long n) { return static_cast<size_t>(((a % n) + n) % n); }

}  // namespace

void ring_allreduce(Ring& r, const Desc& d, void* buf, size_t count, DType t, RedOp op, Wire wire) {
  if (t != DType::F32) wire = Wire::Exact;
  const size_t es = dtype_size(t);
  const long n = r.size, me = r.index;
  const Chunking ch(count, static_cast<size_t>(n), chunk_elems(r, ceil_div(count, static_cast<size_t>(n)), es));
  char* base = static_cast<char*>(buf);
  std::vector<Send> sends;
  std::vector<Recv> recvs;
  const long steps = 2 * (n - 1);
  for (long step = 0; step < steps; ++step) {
    const bool rs = step < n - 1;
    const long s = rs ? step : step - (n - 1);
    const size_t send_block = rs ? mod(me - s, n) : mod(me + 1 - s, n);
    const size_t recv_block = rs ? mod(me - s - 1, n) : mod(me - s, n);
    for (size_t c = 0; c < ch.chunks; ++c) {
      const long k = step * static_cast<long>(ch.chunks) + static_cast<long>(c);
      sends.push_back({base + ch.start(send_block, c) * es, ch.len(send_block, c) * es,
                       step == 0 ? -1 : k - static_cast<long>(ch.chunks), step == n - 1});
      recvs.push_back({base + ch.start(recv_block, c) * es, ch.len(recv_block, c) * es, rs});
    }
  }
  RingRun(r, d, t, op, wire).run(sends, recvs);
}

void ring_broadcast(Ring& r, const Desc& d, void* buf, size_t bytes, int root_index) {
  const Chunking ch(bytes, 1, chunk_elems(r, bytes, 1));
  char* base = static_cast<char*>(buf);
  const bool is_root = r.index == root_index;
  const bool forwards = (r.index + 1) % r.size != root_index;
  std::vector<Send> sends;
  std::vector<Recv> recvs;
  for (size_t c = 0; c < ch.chunks; ++c) {
    if (!is_root) recvs.push_back({base + ch.start(0, c), ch.len(0, c), false});
    if (is_root || forwards)
      sends.push_back({base + ch.start(0, c), ch.len(0, c), is_root ? -1 : static_cast<long>(c)});
  }
  RingRun(r, d, DType::F32, RedOp::Sum).run(sends, recvs);
}

void ring_allgather(Ring& r, const Desc& d, void* out, size_t bytes) {
  const long n = r.size, me = r.index;
  const Chunking ch(bytes, 1, chunk_elems(r, bytes, 1));
  char* base = static_cast<char*>(out);
  std::vector<Send> sends;
  std::vector<Recv> recvs;
  for (long step = 0; step < n - 1; ++step) {
    const size_t send_block = mod(me - step, n), recv_block = mod(me - step - 1, n);
    for (size_t c = 0; c < ch.chunks; ++c) {
      const long k = step * static_cast<long>(ch.chunks) + static_cast<long>(c);
      sends.push_back({base + send_block * bytes + ch.start(0, c), ch.len(0, c),
                       step == 0 ? -1 : k - static_cast<long>(ch.chunks)});
      recvs.push_back({base + recv_block * bytes + ch.start(0, c), ch.len(0, c), false});
    }
  }
  RingRun(r, d, DType::F32, RedOp::Sum).run(sends, recvs);
}

}  // namespace unicc
