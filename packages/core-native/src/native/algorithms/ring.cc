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

// Moves a schedule of chunks around the ring: sends to the right, receives from the left, both
// at once in one poll loop, each send waiting only for the receive it forwards.
class RingRun {
 public:
  RingRun(Ring& r, const Desc& d, DType t, RedOp op, Wire wire = Wire::Exact)
      : r_(r), d_(d), hash_(d.hash()), t_(t), op_(op), wire_(wire) {}

  void run(const std::vector<Send>& sends, const std::vector<Recv>& recvs) {
    size_t max_reduce = 0, max_send = 0;
    for (const Recv& rv : recvs) if (rv.reduce || packed()) max_reduce = std::max(max_reduce, on_wire(rv.len));
    for (const Send& sd : sends) max_send = std::max(max_send, sd.len);
    tmp_.resize(max_reduce);
    if (packed()) stage_.resize(on_wire(max_send));
    size_t si = 0, ri = 0;
    size_t s_off = 0, r_off = 0;  // bytes of the current frame (header + payload) done
    FrameHeader s_hdr{}, r_hdr{};
    int64_t last_progress = now_ms();
    while (si < sends.size() || ri < recvs.size()) {
      const bool can_send = si < sends.size() && sends[si].after < static_cast<long>(ri);
      const bool want_recv = ri < recvs.size();
      pollfd fds[2];
      int nfds = 0;
      if (r_.left == r_.right) {
        fds[nfds++] = {r_.left->fd(), static_cast<short>((want_recv ? POLLIN : 0) | (can_send ? POLLOUT : 0)), 0};
      } else {
        if (want_recv) fds[nfds++] = {r_.left->fd(), POLLIN, 0};
        if (can_send) fds[nfds++] = {r_.right->fd(), POLLOUT, 0};
      }
      int rc = poll(fds, nfds, 100);
      if (rc < 0 && errno != EINTR) throw CommError("poll failed: " + std::string(std::strerror(errno)));
      bool progressed = false;
      if (can_send) {
        const Send& s = sends[si];
        const char* payload = packed() ? stage_.data() : s.ptr;
        const size_t len = on_wire(s.len);
        if (s_off == 0) {
          s_hdr = {kFrameData, d_.seq, hash_, static_cast<uint32_t>(len)};
          if (packed() && packed_send_ != si) { pack(s); packed_send_ = si; }
        }
        const size_t total = sizeof(FrameHeader) + len;
        iovec iov[2];
        int n = 0;
        if (s_off < sizeof(FrameHeader))
          iov[n++] = {reinterpret_cast<char*>(&s_hdr) + s_off, sizeof(FrameHeader) - s_off};
        const size_t pay_off = s_off > sizeof(FrameHeader) ? s_off - sizeof(FrameHeader) : 0;
        if (len > pay_off) iov[n++] = {const_cast<char*>(payload) + pay_off, len - pay_off};
        msghdr mh{};
        mh.msg_iov = iov;
        mh.msg_iovlen = n;
        const ssize_t k = n ? sendmsg(r_.right->fd(), &mh, MSG_NOSIGNAL | MSG_DONTWAIT) : 0;
        if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
          lost(*r_.right, "sending to", std::strerror(errno));
        if (k > 0) { s_off += static_cast<size_t>(k); progressed = true; }
        r_.right->unsent_in_frame = s_off == 0 ? 0 : total - s_off;
        if (s_off == total) { ++si; s_off = 0; r_.right->unsent_in_frame = 0; }
      }
      while (ri < recvs.size()) {  // drain what has arrived, frame by frame
        const Recv& rv = recvs[ri];
        const bool in_header = r_off < sizeof(FrameHeader);
        const size_t pay_off = in_header ? 0 : r_off - sizeof(FrameHeader);
        const bool staged = rv.reduce || packed();
        char* dst = in_header ? reinterpret_cast<char*>(&r_hdr) + r_off : (staged ? tmp_.data() : rv.ptr) + pay_off;
        const size_t want = in_header ? sizeof(FrameHeader) - r_off : on_wire(rv.len) - pay_off;
        if (want > 0) {
          const ssize_t k = recv(r_.left->fd(), dst, want, MSG_DONTWAIT);
          if (k == 0) lost(*r_.left, "receiving from", "connection closed");
          if (k < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
            lost(*r_.left, "receiving from", std::strerror(errno));
          }
          r_off += static_cast<size_t>(k);
          progressed = true;
          if (static_cast<size_t>(k) < want) continue;
          if (in_header) {
            check_header(r_hdr, rv);
            continue;
          }
        }
        if (packed()) wire16_decode(wire_, tmp_.data(), rv.len / 4, reinterpret_cast<float*>(rv.ptr), rv.reduce, op_);
        else if (rv.reduce) reduce(rv.ptr, rv.ptr, tmp_.data(), rv.len / dtype_size(t_), t_, op_);
        r_off = 0;
        ++ri;
      }
      if (r_.check_abort) r_.check_abort();
      const int64_t now = now_ms();
      if (progressed) last_progress = now;
      else if (now - last_progress > r_.timeout_ms) {
        const bool waiting_recv = ri < recvs.size();
        Conn& c = waiting_recv ? *r_.left : *r_.right;
        throw CommError(c.label() + " made no progress for " + std::to_string(r_.timeout_ms / 1000) +
                        " s (UNICC_TIMEOUT_S) during " + d_.str() + "; detected by " + r_.self_label +
                        ". Its host may be unreachable, or it stopped calling collectives.");
      }
    }
  }

 private:
  [[noreturn]] void lost(Conn& c, const char* doing, const std::string& why) {
    throw CommError("lost " + c.label() + " while " + doing + " it during " + d_.str() + " (" + why +
                    "): it died, was killed, or its host became unreachable; detected by " + r_.self_label);
  }

  void check_header(const FrameHeader& h, const Recv& rv) {
    if (h.type == kFrameAbort) {
      // The peer failed and says why; read its reason (bounded) and pass it on unchanged.
      std::string text(std::min<uint32_t>(h.len, kMaxAbortText), '\0');
      size_t got = 0;
      const int64_t deadline = now_ms() + 1000;
      while (got < text.size() && now_ms() < deadline) {
        const ssize_t k = recv(r_.left->fd(), text.data() + got, text.size() - got, MSG_DONTWAIT);
        if (k > 0) got += static_cast<size_t>(k);
        else if (k == 0 || (errno != EAGAIN && errno != EINTR)) break;
        else wait_fd(r_.left->fd(), POLLIN, 100);
      }
      text.resize(got);
      throw CommError(text.empty() ? r_.left->label() + " aborted" : text);
    }
    if (h.type != kFrameData)
      throw CommError("corrupt data from " + r_.left->label() + " during " + d_.str() + " on " + r_.self_label +
                      ": bad frame header");
    if (h.seq != d_.seq || h.hash != hash_ || h.len != on_wire(rv.len))
      throw CommError("ranks called different collectives: " + r_.self_label + " called " + d_.str() + " but " +
                      r_.left->label() + " sent data for another request (collective #" + std::to_string(h.seq) +
                      ", " + std::to_string(h.len) + " bytes where " + std::to_string(on_wire(rv.len)) +
                      " were expected). Every rank must call the same collectives, in the same order, with the "
                      "same sizes.");
  }

  bool packed() const { return wire_ != Wire::Exact; }
  size_t on_wire(size_t bytes) const { return packed() ? wire16_bytes(bytes / 4) : bytes; }

  void pack(const Send& s) {
    const size_t n = s.len / 4;
    wire16_encode(wire_, reinterpret_cast<const float*>(s.ptr), n, stage_.data());
    if (s.round_source) wire16_decode(wire_, stage_.data(), n, reinterpret_cast<float*>(const_cast<char*>(s.ptr)), false, op_);
  }

  Ring& r_;
  const Desc& d_;
  uint32_t hash_;
  DType t_;
  RedOp op_;
  Wire wire_;
  std::vector<char> tmp_;    // a received payload that is reduced or decoded into place
  std::vector<char> stage_;  // the encoded payload being sent
  size_t packed_send_ = SIZE_MAX;  // which send stage_ holds (a send may wait for the socket)
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

size_t mod(long a, long n) { return static_cast<size_t>(((a % n) + n) % n); }

}  // namespace

void ring_allreduce(Ring& r, const Desc& d, void* buf, size_t count, DType t, RedOp op, Wire wire) {
  if (t != DType::F32) wire = Wire::Exact;
  const size_t es = dtype_size(t);
  const long n = r.size, me = r.index;
  const Chunking ch(count, static_cast<size_t>(n), r.chunk_bytes / es);
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
  const Chunking ch(bytes, 1, r.chunk_bytes);
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
  const Chunking ch(bytes, 1, r.chunk_bytes);
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
