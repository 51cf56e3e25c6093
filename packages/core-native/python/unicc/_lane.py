"""The client lane: small unnamed requests run in this process, on a shared-memory group that the
bridges of a one-host world made for their clients (src/native/binding/client_lane.cc, called by
ctypes, which releases the GIL during the call). No other process is woken for them: through the
command ring, a 1 KiB allreduce costs two futex wakes of another process, more than the
collective. The lane keeps its own order, as the ring does; a client sends each kind of request
one way (Bridge.submit_at, barriers), so that every rank's lanes see the same sequence.
"""

import ctypes
import threading

_ERROR_BYTES = 2048
_TIMEOUT_MS_MAX = 2**31 - 1


def _load(lib):
    c = ctypes.CDLL(lib)
    c.unicc_lane_join.restype = ctypes.c_void_p
    c.unicc_lane_join.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint64,
                                  ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]
    c.unicc_lane_prepare.restype = ctypes.c_void_p
    c.unicc_lane_prepare.argtypes = [ctypes.c_void_p] + [ctypes.c_int] * 5
    c.unicc_lane_run.restype = ctypes.c_int
    c.unicc_lane_run.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint64]
    c.unicc_lane_error.restype = ctypes.c_char_p
    c.unicc_lane_error.argtypes = [ctypes.c_void_p]
    c.unicc_lane_leave.restype = None
    c.unicc_lane_leave.argtypes = [ctypes.c_void_p]
    return c


class Lane:
    """This rank's place in the group its bridge offered (the ring's answer: path, lib, pieceBytes,
    labels); OSError if the group cannot be joined. run() blocks until the collective is done on
    every rank, bounded by timeout_s (a peer that dies is named within about 50 ms). Thread-safe:
    requests run one at a time."""

    def __init__(self, offer, local_rank, timeout_s):
        self._lib = _load(offer["lib"])
        labels = offer["labels"]
        #: The largest request in bytes the lane takes (one round of the group).
        self.small_bytes = offer["pieceBytes"] * len(labels)
        #: Requests run here so far (tests and benchmarks read it).
        self.calls = 0
        self._lock = threading.Lock()
        # Each kind of request is prepared once: a call then passes three arguments, not ten.
        self._prepared = {}
        error = ctypes.create_string_buffer(_ERROR_BYTES)
        timeout_ms = min(int(timeout_s * 1000), _TIMEOUT_MS_MAX)
        self._handle = self._lib.unicc_lane_join(offer["path"].encode(), local_rank, len(labels),
                                                 "\n".join(labels).encode(), offer["pieceBytes"], timeout_ms,
                                                 error, _ERROR_BYTES)
        if not self._handle:
            raise OSError("cannot join the host's client lane: %s" % error.value.decode(errors="replace"))

    def run(self, kind, address, count):
        """A request of `kind` (the ring's numbers for its collective, dtype and op, its root, and
        check_span) on `count` elements at `address` in this process, in place; None once done,
        else the core's message (which names the rank). check_span: make sure first that the
        memory is there (else a bad address ends the process)."""
        with self._lock:
            if self._handle is None:
                return "the client lane is closed"
            prepared = self._prepared.get(kind)
            if prepared is None:
                prepared = self._prepared[kind] = self._lib.unicc_lane_prepare(self._handle, *kind)
            failed = self._lib.unicc_lane_run(prepared, address, count)
            self.calls += 1
            return self._lib.unicc_lane_error(self._handle).decode(errors="replace") if failed else None

    def close(self):
        with self._lock:
            if self._handle is not None:
                self._lib.unicc_lane_leave(self._handle)
                self._handle = None
