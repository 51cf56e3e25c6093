"""Collectives on TensorFlow tensors through this rank's bridge.

Every call stages its tensors in one shared-memory slab, submits one request per tensor (named
ones go to the engine, which fuses them), waits, and hands the results back:
- inside a tf.function (what Keras' fit runs), one stateful tf.numpy_function per call: TensorFlow
  passes the inputs' own buffers in, the values are copied into the slab (copy 1), and the results
  are copied out of it into 64-byte-aligned arrays that TensorFlow adopts as the output tensors
  without copying them again (copy 2);
- eagerly, the same Python runs directly (np.asarray shares an eager tensor's buffer), and the
  result is copied out of the slab into a new tensor by tf.convert_to_tensor.
So a float32 or float64 tensor is copied once on the way in and once on the way out. Stateful ops
in a tf.function run in program order, so every rank submits its requests in the same order.
"""

import time

import numpy as np
import tensorflow as tf

import unicc

Sum = "sum"
Average = "average"
Min = "min"
Max = "max"
Product = "product"
_OPS = (Sum, Average, Min, Max, Product)
_ALIGN = 64  # TensorFlow adopts a returned array without copying only if it is this aligned


class Compression:
    """How the engine carries float32 gradients between hosts (arithmetic stays float32).
    None leaves it to UNICC_COMPRESSION (default: exact)."""

    none = "none"
    fp16 = "fp16"
    bf16 = "bf16"


# The core's element types; other dtypes travel as the nearest one that holds them exactly.
_WIRE = {
    np.dtype(np.float32): "f32",
    np.dtype(np.float64): "f64",
    np.dtype(np.int32): "i32",
    np.dtype(np.int64): "i64",
}
_WIDEN = {
    tf.float16: np.float32, tf.bfloat16: np.float32,
    tf.int8: np.int32, tf.int16: np.int32, tf.uint8: np.int32, tf.uint16: np.int32, tf.bool: np.int32,
    tf.uint32: np.int64,
}
_CODE_DTYPE = {"f32": np.float32, "f64": np.float64, "i32": np.int32, "i64": np.int64}
_stats = {"calls": 0, "tensors": 0, "bytes": 0, "seconds": 0.0}


def exchange_stats():
    """Totals over this process's collectives so far: calls, tensors, bytes staged and seconds
    spent in them (copies and waiting for the other ranks included), for timing a training step."""
    return dict(_stats)


def _wire_code(dtype):
    """The core's element type that carries a tf.DType exactly."""
    dtype = tf.as_dtype(dtype)
    np_dtype = np.dtype(_WIDEN.get(dtype, dtype.as_numpy_dtype))
    code = _WIRE.get(np_dtype)
    if code is None:
        raise TypeError("unicc.tensorflow: tensors of dtype %s are not supported" % dtype.name)
    return code


def check_op(op, average=None):
    """Horovod's `average=` (deprecated there) or `op=`; Average by default."""
    if average is not None:
        if op is not None:
            raise ValueError("unicc.tensorflow: pass op= or average=, not both")
        return Average if average else Sum
    op = Average if op is None else op
    if op not in _OPS:
        raise ValueError("unicc.tensorflow: unknown op %r (use Sum, Average, Min, Max or Product)" % (op,))
    return op


def _aligned(shape, dtype):
    dtype = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(n + _ALIGN, np.uint8)
    off = (-raw.ctypes.data) % _ALIGN
    return raw[off:off + n].view(dtype).reshape(shape)


def _exchange(arrays, submit, emit):
    """Stages `arrays` in one slab, runs submit(bridge, slab, i, code, count, offset) -> Handle for
    each, waits for all, and returns [emit(result view, i)] while the slab is still ours."""
    t0 = time.perf_counter()
    b = unicc.bridge()
    codes = [_wire_code(a.dtype) for a in arrays]
    offsets, total = [], 0
    for a, code in zip(arrays, codes):
        offsets.append(total)
        total += -(-max(a.size, 1) * np.dtype(_CODE_DTYPE[code]).itemsize // _ALIGN) * _ALIGN
    slab = b.alloc(total)
    handles = []
    try:
        views = []
        for a, code, off in zip(arrays, codes, offsets):
            v = np.frombuffer(slab.buffer, dtype=_CODE_DTYPE[code], count=a.size, offset=off)
            np.copyto(v, a.reshape(-1), casting="unsafe")
            views.append(v)
        for i, (a, code, off) in enumerate(zip(arrays, codes, offsets)):
            handles.append(submit(b, slab, i, code, a.size, off))
        for h in handles:
            h.wait()
        out = [emit(v, i) for i, v in enumerate(views)]
    finally:
        for h in handles:  # on an early exit too, every request must be over before the slab is reused
            try:
                h.wait()
            except unicc.UniccError:
                pass
        b.release(slab)
    _stats["calls"] += 1
    _stats["tensors"] += len(arrays)
    _stats["bytes"] += total
    _stats["seconds"] += time.perf_counter() - t0
    return out


def _collective(tensors, submit):
    """Runs _exchange on tf tensors, eagerly or as one op of the graph being traced."""
    tensors = [tf.convert_to_tensor(t) for t in tensors]
    if not tensors:
        return []
    for t in tensors:
        _wire_code(t.dtype)
    if unicc.bridge().size == 1:  # nothing to exchange: behave as plain TensorFlow
        return [tf.identity(t) for t in tensors]
    if tf.executing_eagerly():
        def eager_emit(v, i):
            out = tf.convert_to_tensor(v.reshape(tensors[i].shape))  # the one copy out of the slab
            return out if out.dtype == tensors[i].dtype else tf.cast(out, tensors[i].dtype)
        return _exchange([np.asarray(t) for t in tensors], submit, eager_emit)

    def run(*arrays):
        def emit(v, i):
            out = _aligned(arrays[i].shape, arrays[i].dtype)
            np.copyto(out.reshape(-1), v, casting="unsafe")
            return out
        return _exchange(list(arrays), submit, emit)

    outs = tf.numpy_function(run, tensors, [t.dtype for t in tensors], stateful=True, name="unicc_collective")
    for o, t in zip(outs, tensors):
        o.set_shape(t.shape)
    return list(outs)


def _densify(t):
    # Sparse gradients (embedding lookups) travel dense, as Horovod's sparse_as_dense does.
    return tf.convert_to_tensor(t) if isinstance(t, tf.IndexedSlices) else t


def grouped_allreduce(tensors, op=None, names=None, compression=None, average=None):
    """Reduces every tensor of the list across ranks in one call. With `names` (one per tensor,
    the same on every rank) they go to the engine, which fuses them; without, they are reduced
    in call order."""
    op = check_op(op, average)
    compression = None if compression is None else str(compression)
    tensors = [_densify(t) for t in tensors]
    if names is not None and len(names) != len(tensors):
        raise ValueError("unicc.tensorflow: %d names for %d tensors" % (len(names), len(tensors)))

    def submit(b, slab, i, code, count, offset):
        # fp16/bf16 apply to float32 only; other types always travel exactly.
        c = compression if code == "f32" else ("none" if compression is not None else None)
        return b.submit("allreduce", slab, code, count, offset=offset, op=op,
                        name=None if names is None else names[i], compression=c)

    return _collective(tensors, submit)


def allreduce(tensor, average=None, op=None, name=None, compression=None):
    """A new tensor: `tensor` reduced across ranks (Average unless `op` says otherwise)."""
    return grouped_allreduce([tensor], op=op, names=None if name is None else [name],
                             compression=compression, average=average)[0]


def broadcast(tensor, root_rank=0, name=None):
    """A new tensor holding rank `root_rank`'s `tensor`."""
    del name  # broadcasts run in call order; the name is Horovod's, kept for porting
    return grouped_broadcast([tensor], root_rank)[0]


def grouped_broadcast(tensors, root_rank=0):
    def submit(b, slab, i, code, count, offset):
        return b.submit("broadcast", slab, code, count, offset=offset, root=root_rank)

    return _collective([_densify(t) for t in tensors], submit)
