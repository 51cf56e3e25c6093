"""The client's end of the command ring: the second transport of the bridge's op and done messages
(src/native/binding/ring_format.h has the bytes, src/ts/bridge/protocol.ts the messages). A
submission is written into shared memory and a futex doorbell wakes the bridge's native thread;
the completion is read back by whichever of our threads waits (woken by the bridge's futex wake,
the GIL released while it sleeps), so neither a socket nor a thread hand-off is on the way.
Counters are plain 32-bit words written in order; that is enough on x86-64 (stores are not
reordered with stores, nor loads with loads), the only machine the ring is enabled on.
"""

import ctypes
import platform
import struct
import sys
import threading

from . import _shm

ENTRIES = 128  # also the most requests in flight
_HEADER = 4096
_SUB = 512
_COMP = 1024
BYTES = _HEADER + ENTRIES * (_SUB + _COMP)
_MAGIC, _VERSION = 0x31524355, 1
_SQ_TAIL, _SQ_HEAD, _CQ_TAIL, _CQ_HEAD = 64, 128, 192, 256
_SQ_AT, _CQ_AT = _HEADER, _HEADER + ENTRIES * _SUB
_ENTRY = struct.Struct("<QQQQQQiBBBBH")  # req buf out offset count out_offset root coll dtype op wire name_len
NAME_MAX = _SUB - _ENTRY.size
_DONE = struct.Struct("<QI")  # req, error length
DEFAULT_WIRE = 255
CLIENT_MEMORY = 0  # buf 0: offset is an address in our own memory (cross-memory attach)

COLLS = {"allreduce": 0, "broadcast": 1, "allgather": 2, "barrier": 3}
DTYPES = {"f32": 0, "f64": 1, "i32": 2, "i64": 3}
OPS = {"sum": 0, "average": 1, "avg": 1, "min": 2, "max": 3, "product": 4, "prod": 4}
WIRES = {"none": 0, "fp16": 1, "bf16": 2}

_SYS_FUTEX = 202  # x86-64
_FUTEX_WAIT, _FUTEX_WAKE = 0, 1  # shared, not FUTEX_PRIVATE: the bridge is another process


def available():
    return sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64")


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _load_syscall():
    f = ctypes.CDLL(None, use_errno=True).syscall  # CDLL: the GIL is released during the call
    f.restype = ctypes.c_long
    f.argtypes = [ctypes.c_long, ctypes.c_void_p, ctypes.c_int, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint]
    return f


_syscall = _load_syscall() if available() else None

_PR_SET_PTRACER = 0x59616D61


def allow_tracer(pid):
    """Lets process pid (our bridge) attach to our memory where Yama's ptrace_scope 1 would allow
    only our ancestors; without Yama the call fails, and nothing is needed."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PTRACER, ctypes.c_ulong(pid), 0, 0, 0)


class Ring:
    """A ring file made at `path` (the caller sends it to the bridge, then unlinks it). submit()
    may be called from any thread; pump() from any thread that waits; dispatch(req, error) runs
    for each completion (error: None or the bridge's message), on the thread that read it."""

    def __init__(self, path, dispatch):
        self._buf = _shm.make(path, BYTES)
        struct.pack_into("<III", self._buf, 0, _MAGIC, _VERSION, ENTRIES)
        self._sq_tail = ctypes.c_uint32.from_buffer(self._buf, _SQ_TAIL)
        self._cq_tail = ctypes.c_uint32.from_buffer(self._buf, _CQ_TAIL)
        self._cq_head = ctypes.c_uint32.from_buffer(self._buf, _CQ_HEAD)
        self._sq_addr = ctypes.addressof(self._sq_tail)
        self._cq_addr = ctypes.addressof(self._cq_tail)
        self._dispatch = dispatch
        self._submit_lock = threading.Lock()
        self._reap_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._sent = 0  # our copy of sq_tail; minus cq_head (one completion per submission): requests in flight
        self._sleepers = 0  # threads in (or about to enter) a futex wait on cq_tail
        self._naps = {}  # timeout_s -> its timespec (pump is called with one or two timeouts)
        self.path = path
        self.address = ctypes.addressof(self._sq_tail) - _SQ_TAIL  # where our mapping starts (the bridge's probe)

    def submit(self, req, coll, dtype=0, buf=0, offset=0, count=0, op=0, root=0, wire=DEFAULT_WIRE, out=0,
               out_offset=0, name=b"", full=None):
        """Writes one submission and rings the bridge. With ENTRIES in flight, calls full() (which
        waits for completions) until a slot frees."""
        # The hot path of every request: one pack, no allocation beyond it, one syscall.
        with self._submit_lock:
            sent = self._sent
            while (sent - self._cq_head.value) & 0xFFFFFFFF >= ENTRIES:
                full()
            at = _SQ_AT + (sent % ENTRIES) * _SUB
            _ENTRY.pack_into(self._buf, at, req, buf, out, offset, count, out_offset, root, coll, dtype, op, wire, len(name))
            if name:
                self._buf[at + _ENTRY.size:at + _ENTRY.size + len(name)] = name
            self._sent = sent = (sent + 1) & 0xFFFFFFFF
            self._sq_tail.value = sent  # after the entry: the bridge reads it once it sees the tail
            _syscall(_SYS_FUTEX, self._sq_addr, _FUTEX_WAKE, 1, None, None, 0)

    def reap(self, me=0):
        """Reads the completions there are and dispatches them; True if there were any. `me`: 1
        when the caller counts among the sleepers (inside pump)."""
        with self._reap_lock:
            head, tail = self._cq_head.value, self._cq_tail.value
            if head == tail:
                return False
            done = []
            while head != tail:
                at = _CQ_AT + (head % ENTRIES) * _COMP
                req, n = _DONE.unpack_from(self._buf, at)
                n = min(n, _COMP - _DONE.size)
                done.append((req, self._buf[at + _DONE.size:at + _DONE.size + n].decode(errors="replace") if n else None))
                head = (head + 1) & 0xFFFFFFFF
            self._cq_head.value = head  # the bridge may reuse those entries now (and submit sees them free)
        for req, error in done:
            self._dispatch(req, error)
        if self._sleepers > me:  # a sleeper may wait for one of these: let it look
            self.wake()
        return True

    def pump(self, ready, timeout_s):
        """Until ready() (or once, without it): reads completions, or sleeps on the completion
        counter, at most once and timeout_s long: the caller decides what a silence means."""
        with self._count_lock:
            self._sleepers += 1
        try:
            napped = False
            while True:
                if ready is not None and ready():
                    return
                seen = self._cq_tail.value
                if self.reap(1):
                    if ready is None:
                        return
                    continue
                if napped or (ready is not None and ready()):
                    return
                nap = self._naps.get(timeout_s)
                if nap is None:
                    nap = self._naps[timeout_s] = _Timespec(int(timeout_s), int((timeout_s % 1) * 1e9))
                # Woken, look once more before returning: the completion we slept for is usually there.
                _syscall(_SYS_FUTEX, self._cq_addr, _FUTEX_WAIT, seen, ctypes.addressof(nap), None, 0)
                napped = True
        finally:
            with self._count_lock:
                self._sleepers -= 1

    def wake(self):
        """Wakes every thread sleeping in pump() (a failure, a completion another thread read)."""
        _syscall(_SYS_FUTEX, self._cq_addr, _FUTEX_WAKE, 0x7FFFFFFF, None, None, 0)

    def close(self):
        self.wake()
        del self._sq_tail, self._cq_tail, self._cq_head
        try:
            self._buf.close()
        except BufferError:
            pass
