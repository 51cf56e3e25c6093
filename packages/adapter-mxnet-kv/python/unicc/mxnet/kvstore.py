"""The `dist_sync_unicc` KVStore: MXNet's dist_sync semantics (pushed gradients are summed across
workers; init/broadcast take rank 0's values) on unicc's peer-to-peer engine instead of ps-lite's
servers. Every pushpull is a named allreduce ("kv.<key>"), so the engine negotiates, fuses and
(optionally) carries it in fp16/bf16; a list of keys is submitted at once and then waited for.
Updates stay on the workers (is_capable('optimizer') is False), as with Horovod."""

import zlib

import mxnet as mx
import numpy as np

import unicc

from . import _ops

_MAX_DIMS = 8
_COMPRESSIONS = ("none", "fp16", "bf16")


def _pairs(key, value, what):
    """[(key, [arrays])] for a key or a list of keys, with their value(s)."""
    if isinstance(key, (list, tuple)):
        values = value if value is not None else [None] * len(key)
        if len(values) != len(key):
            raise ValueError("unicc.mxnet: %s got %d keys but %d values" % (what, len(key), len(values)))
        return [(k, None if v is None else _ops.as_list(v)) for k, v in zip(key, values)]
    return [(key, None if value is None else _ops.as_list(value))]


class UniccKVStore(mx.kvstore.KVStoreBase):
    """A KVStore on unicc. `compression` ("none", "fp16", "bf16"; default UNICC_COMPRESSION, read by
    the engine) is how fp32 values cross hosts; arithmetic stays fp32."""

    def __init__(self, compression=None):
        if compression not in (None,) + _COMPRESSIONS:
            raise ValueError("unicc.mxnet: compression %r is not one of %s" % (compression, _COMPRESSIONS))
        self._bridge = unicc.init()
        self._compression = compression
        self._shapes = {}   # key -> shape agreed by every rank
        self._stored = {}   # key -> (slab, view): the store's value, for keys given to init()
        self._pushed = {}   # key -> Pending push, for the next pull

    # ---- what MXNet asks about the store

    @property
    def type(self):
        return "dist_sync_unicc"

    @property
    def rank(self):
        return self._bridge.rank

    @property
    def num_workers(self):
        return self._bridge.size

    def is_capable(self, capability):
        return False  # neither optimizer on the store nor sparse pulls: updates stay on the workers

    def set_gradient_compression(self, compression_params):
        kind = (compression_params or {}).get("type", "none")
        if kind not in _COMPRESSIONS:
            raise ValueError("unicc.mxnet: gradient compression %r is not supported by dist_sync_unicc; use "
                             "{'type': 'fp16'} or {'type': 'bf16'} (16-bit transfer, fp32 arithmetic)" % (kind,))
        self._compression = kind

    def set_optimizer(self, optimizer):
        raise unicc.UniccError("unicc.mxnet: dist_sync_unicc does not run optimizers (is_capable('optimizer') is False); "
                               "let gluon.Trainer / Module update on the workers (update_on_kvstore=False)")

    def save_optimizer_states(self, fname, dump_optimizer=False):
        raise unicc.UniccError("unicc.mxnet: dist_sync_unicc keeps no optimizer state; the workers do: use "
                               "trainer.save_states(fname) / module.save_optimizer_states(fname)")

    def load_optimizer_states(self, fname):
        raise unicc.UniccError("unicc.mxnet: dist_sync_unicc keeps no optimizer state; the workers do: use "
                               "trainer.load_states(fname) / module.load_optimizer_states(fname)")

    # ---- initial values

    def broadcast(self, key, value, out, priority=0):
        """Every rank's `out` gets rank 0's `value` (after checking every rank has the same shapes)."""
        pairs = _pairs(key, value, "broadcast")
        outs = [o for _, o in _pairs(key, out, "broadcast")]
        self._agree_shapes(pairs)
        pending = [_ops.start_broadcast(v[0], o, root=0) for (_, v), o in zip(pairs, outs)]
        for p in pending:
            p.wait()

    def init(self, key, value):
        """Stores rank 0's value under each key (and writes it into `value` in place, so every rank starts
        from it); pull() returns it until a push replaces it."""
        pairs = _pairs(key, value, "init")
        self._agree_shapes(pairs)
        for k, v in pairs:
            p = _ops.start_broadcast(v[0], v, root=0, keep=True)
            p.wait()
            self._replace(k, p)

    def _agree_shapes(self, pairs):
        """One allgather of every key's (key hash, shape): ranks whose models differ fail here, naming key and ranks."""
        desc = np.zeros((len(pairs), 2 + _MAX_DIMS), dtype=np.int64)
        for i, (k, vs) in enumerate(pairs):
            shape = vs[0].shape
            if len(shape) > _MAX_DIMS:
                raise ValueError("unicc.mxnet: key %r has %d dimensions (at most %d)" % (k, len(shape), _MAX_DIMS))
            desc[i, :2] = (zlib.crc32(str(k).encode()), len(shape))
            desc[i, 2:2 + len(shape)] = shape
        count = _ops.start_allgather(mx.nd.array([len(pairs)], dtype=np.int64)).wait()[0].asnumpy()
        if len(set(count.tolist())) > 1:
            raise unicc.UniccError("unicc.mxnet: rank %d: ranks initialise different numbers of keys at once: %s; every "
                                   "rank must build the same model" % (self.rank, dict(enumerate(count.tolist()))))
        every = _ops.start_allgather(mx.nd.array(desc, dtype=np.int64)).wait()[0].asnumpy()
        every = every.reshape(self.num_workers, len(pairs), 2 + _MAX_DIMS)
        for i, (k, vs) in enumerate(pairs):
            seen = {}
            for r in range(self.num_workers):
                ndim = int(every[r, i, 1])
                seen.setdefault((int(every[r, i, 0]), tuple(int(d) for d in every[r, i, 2:2 + ndim])), []).append(r)
            if len(seen) > 1:
                mine = (int(every[self.rank, i, 0]),)
                parts = ["shape %s on ranks %s" % (s, rs) if h == mine[0] else "another key on ranks %s" % rs
                         for (h, s), rs in sorted(seen.items(), key=lambda kv: (-len(kv[1]), kv[1][0]))]  # most ranks first
                raise unicc.UniccError("unicc.mxnet: rank %d: key %r differs across ranks: %s; every rank must build "
                                       "the same model with the same parameter shapes" % (self.rank, k, "; ".join(parts)))
            self._shapes[k] = vs[0].shape

    # ---- gradients

    def _check(self, k, vs):
        want = self._shapes.get(k)
        for v in vs:
            if want is not None and v.shape != want:
                raise ValueError("unicc.mxnet: rank %d: key %r was initialised with shape %s but is pushed with %s"
                                 % (self.rank, k, want, v.shape))

    def _start(self, k, vs, outs):
        self._check(k, vs)
        return _ops.start_allreduce(vs, outs, op="sum", name="kv.%s" % (k,), compression=self._compression,
                                    keep=k in self._stored)

    def pushpull(self, key, value, out=None, priority=0):
        """Sums each key's values across workers into `out` (default: in place). All keys of a list are
        in flight together, so the engine fuses them."""
        pairs = _pairs(key, value, "pushpull")
        outs = [vs if o is None else o for (_, vs), (_, o) in zip(pairs, _pairs(key, out, "pushpull"))]
        pending = [(k, self._start(k, vs, o)) for (k, vs), o in zip(pairs, outs)]
        self._wait_all(pending)

    def _wait_all(self, pending):
        error = None
        for k, p in pending:  # wait for all, even after a failure, so no slab is left in use
            try:
                p.wait()
            except unicc.UniccError as e:
                error = error or e
            if k in self._stored:
                self._replace(k, p)
        if error is not None:
            raise error

    def push(self, key, value, priority=0):
        """Starts summing the values across workers; pull() waits for it."""
        for k, vs in _pairs(key, value, "push"):
            if k in self._pushed:
                raise unicc.UniccError("unicc.mxnet: rank %d: key %r pushed twice without a pull in between" % (self.rank, k))
            self._pushed[k] = self._start(k, vs, [])

    def pull(self, key, out=None, priority=0, ignore_sparse=True):
        """The key's latest value (the last push's sum, else what init stored) into `out`."""
        pairs = _pairs(key, out, "pull")
        pushed = [(k, self._pushed.pop(k)) for k, _ in pairs if k in self._pushed]
        self._wait_all(pushed)
        for k, outs in pairs:
            if k not in self._stored:
                raise unicc.UniccError("unicc.mxnet: rank %d: pull of key %r, which was neither initialised nor pushed"
                                       % (self.rank, k))
            for o in outs or []:
                _ops.copy_out(self._stored[k][1], o)

    def row_sparse_pull(self, key, out=None, priority=0, row_ids=None):
        raise unicc.UniccError("unicc.mxnet: dist_sync_unicc has no sparse support (row_sparse_pull)")

    def _replace(self, k, pending):
        """pending's slab becomes the key's stored value (the old one goes back to the pool)."""
        if not pending.keep:
            return
        old = self._stored.get(k)
        if old is not None:
            self._bridge.release(old[0])
        self._stored[k] = (pending.slab, pending.result)


@mx.kvstore.KVStoreBase.register
class Dist_sync_unicc(UniccKVStore):  # noqa: N801 -- MXNet's registry keys stores by class name, lowercased
    """What `mx.kv.create("dist_sync_unicc")` and `kvstore="dist_sync_unicc"` make."""
