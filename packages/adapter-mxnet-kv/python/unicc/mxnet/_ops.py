"""Collectives on MXNet NDArrays through this rank's bridge (the one Python client, unicc).

Copies: an NDArray goes into a shared-memory slab with ONE copy (MXNDArraySyncCopyToCPU writes
straight into the slab; it first waits for the engine's pending writes, e.g. backward's), the core
reduces in place there, and the result comes back with ONE copy per output array
(MXNDArraySyncCopyFromCPU reads straight from the slab). float16/int8/uint8 arrays are widened
to the core's nearest type first (one more copy); several values (one per device) are summed on
the device side first (add_n), as MXNet's own stores do.
"""

import ctypes
import threading

import mxnet as mx
import numpy as np
from mxnet.base import _LIB, check_call

import unicc

# numpy dtype -> (wire dtype, the core's code)
_WIRE = {
    np.dtype(np.float32): (np.float32, "f32"),
    np.dtype(np.float64): (np.float64, "f64"),
    np.dtype(np.float16): (np.float32, "f32"),
    np.dtype(np.int32): (np.int32, "i32"),
    np.dtype(np.int64): (np.int64, "i64"),
    np.dtype(np.int8): (np.int32, "i32"),
    np.dtype(np.uint8): (np.int32, "i32"),
}


def bridge():
    return unicc.init()


def wire_of(dtype):
    try:
        return _WIRE[np.dtype(dtype)]
    except KeyError:
        raise TypeError("unicc.mxnet: NDArrays of dtype %s are not supported (%s)"
                        % (np.dtype(dtype), ", ".join(str(d) for d in _WIRE))) from None


def view(slab, wire, count, offset=0):
    """A numpy array over `count` elements of a slab at byte `offset` (the whole-slab view is cached)."""
    v = slab.views.get(wire)
    if v is None:
        v = np.frombuffer(slab.buffer, dtype=wire)
        slab.views[wire] = v
    start = offset // np.dtype(wire).itemsize
    return v[start:start + count]


def copy_in(arr, dst):
    """arr (any context) -> dst, a C-contiguous numpy view of a slab: one copy."""
    if arr.dtype != dst.dtype:
        arr = arr.astype(dst.dtype)
    check_call(_LIB.MXNDArraySyncCopyToCPU(arr.handle, dst.ctypes.data_as(ctypes.c_void_p), ctypes.c_size_t(dst.size)))


def copy_out(src, out):
    """src (a slab view) -> the NDArray out: one copy."""
    out._sync_copyfrom(src.reshape(out.shape))


def as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def local_sum(values):
    """One array holding the sum of a key's values (one per device)."""
    return values[0] if len(values) == 1 else mx.nd.add_n(*[v.as_in_context(values[0].context) for v in values])


class Pending:
    """A collective in flight on a slab; wait() copies its result into every output once (then the
    slab goes back to the pool, unless keep=True: the caller then owns it)."""

    def __init__(self, handle, slab, result, outs, keep=False, extra=()):
        self.handle = handle
        self.slab = slab
        self.result = result  # the slab view holding the outcome
        self._outs = outs
        self.keep = keep
        self._extra = list(extra)
        self._lock = threading.Lock()
        self._finished = False

    def wait(self):
        try:
            self.handle.wait()
        finally:
            self._finish()
        return self._outs

    def _finish(self):
        with self._lock:
            if self._finished:
                return
            self._finished = True
            b = bridge()
            try:
                if self.handle.exception() is None:
                    for o in self._outs:
                        copy_out(self.result, o)
            finally:
                for s in self._extra:
                    b.release(s)
                if not self.keep:
                    b.release(self.slab)


def stage(values):
    """A slab holding the (local sum of the) values in their wire dtype: (slab, view, code)."""
    a = local_sum(as_list(values))
    wire, code = wire_of(a.dtype)
    n = a.size
    slab = bridge().alloc(max(n, 1) * np.dtype(wire).itemsize)
    v = view(slab, wire, n)
    try:
        if n:
            copy_in(a, v)
    except BaseException:
        bridge().release(slab)
        raise
    return slab, v, code


def start_allreduce(values, outs, op="sum", name=None, compression=None, keep=False):
    """Starts reducing `values` (one key's arrays) across ranks; the result lands in `outs`.
    compression None: the engine's default (UNICC_COMPRESSION); "none" overrides that."""
    slab, v, code = stage(values)
    try:
        h = bridge().submit("allreduce", slab, code, v.size, op=op, name=name, compression=compression)
    except BaseException:
        bridge().release(slab)
        raise
    return Pending(h, slab, v, as_list(outs), keep=keep)


def start_broadcast(value, outs, root=0, keep=False):
    slab, v, code = stage(value)
    try:
        h = bridge().submit("broadcast", slab, code, v.size, root=root)
    except BaseException:
        bridge().release(slab)
        raise
    return Pending(h, slab, v, as_list(outs), keep=keep)


def start_allgather(value):
    """Starts concatenating every rank's `value` (same shape on all) along axis 0 into a new NDArray."""
    b = bridge()
    src, _, code = stage(value)
    n = value.size
    wire = wire_of(value.dtype)[0]
    shape = (b.size * value.shape[0],) + tuple(value.shape[1:]) if value.ndim else (b.size,)
    out = mx.nd.empty(shape, ctx=value.context, dtype=value.dtype)
    try:
        dst = b.alloc(max(n * b.size, 1) * np.dtype(wire).itemsize)
    except BaseException:
        b.release(src)
        raise
    try:
        h = b.submit("allgather", src, code, n, out=dst)
    except BaseException:
        b.release(src)
        b.release(dst)
        raise
    return Pending(h, dst, view(dst, wire, n * b.size), [out], extra=[src])
