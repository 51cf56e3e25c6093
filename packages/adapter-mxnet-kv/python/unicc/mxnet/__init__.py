"""unicc for MXNet. Importing it registers the KVStore `dist_sync_unicc`:

    import unicc.mxnet
    trainer = gluon.Trainer(net.collect_params(), "sgd", {...}, kvstore="dist_sync_unicc")
    mod.fit(train_iter, kvstore="dist_sync_unicc", ...)

or, as with horovod.mxnet:

    import unicc.mxnet as hvd
    hvd.init()
    hvd.broadcast_parameters(net.collect_params(), root_rank=0)
    trainer = hvd.DistributedTrainer(net.collect_params(), "sgd", {...})
"""

import mxnet as mx

import unicc
from unicc import BridgeError, UniccError, local_rank, local_size, rank, shutdown, size  # noqa: F401

from . import _ops
from .kvstore import Dist_sync_unicc, UniccKVStore  # noqa: F401 (registers dist_sync_unicc)
from .sharded import ShardedSoftmaxClassifier  # noqa: F401
from .trainer import DistributedTrainer  # noqa: F401


class Compression:
    """How the engine carries fp32 values across hosts (arithmetic stays fp32)."""

    none = "none"
    fp16 = "fp16"
    bf16 = "bf16"


def init():
    """Starts this rank's bridge (from the environment `unicc run` sets); safe to call again."""
    unicc.init()


def allreduce_(tensor, average=True, name=None, priority=0, compression=None):
    """Reduces `tensor` across ranks in place (the mean, or the sum with average=False)."""
    _ops.start_allreduce(tensor, tensor, op="average" if average else "sum", name=name, compression=compression).wait()
    return tensor


def allreduce(tensor, average=True, name=None, priority=0, compression=None):
    """A new NDArray: `tensor` reduced across ranks (the mean, or the sum with average=False)."""
    return allreduce_(tensor.copy(), average, name, priority, compression)


def broadcast_(tensor, root_rank=0, name=None, priority=0):
    _ops.start_broadcast(tensor, tensor, root=root_rank).wait()
    return tensor


def broadcast(tensor, root_rank=0, name=None, priority=0):
    """A new NDArray holding rank root_rank's `tensor`."""
    return broadcast_(tensor.copy(), root_rank)


def allgather(tensor, name=None, priority=0):
    """Every rank's `tensor` concatenated along axis 0 (all ranks pass the same shape)."""
    return _ops.start_allgather(tensor).wait()[0]


def broadcast_parameters(params, root_rank=0):
    """Overwrites parameters with rank root_rank's, in place: a gluon ParameterDict (initialised; every
    device's copy) or a dict of name -> NDArray (e.g. Module.get_params()'s)."""
    arrays = []
    for name, p in sorted(params.items()):
        if isinstance(p, mx.gluon.Parameter):
            if p._data is None:
                raise UniccError("unicc.mxnet: rank %d: parameter %s is not initialised (deferred); call "
                                 "net.initialize() and run one forward pass before broadcast_parameters" % (rank(), name))
            arrays.append((p.list_data()[0], p.list_data()))
        elif isinstance(p, mx.nd.NDArray):
            arrays.append((p, [p]))
        else:
            raise TypeError("unicc.mxnet: broadcast_parameters takes Parameters or NDArrays, got %r for %s" % (type(p), name))
    pending = [_ops.start_broadcast(v, outs, root=root_rank) for v, outs in arrays]
    for p in pending:
        p.wait()


__all__ = [
    "init", "shutdown", "rank", "size", "local_rank", "local_size", "allreduce", "allreduce_", "broadcast",
    "broadcast_", "allgather", "broadcast_parameters", "DistributedTrainer", "UniccKVStore", "ShardedSoftmaxClassifier",
    "Compression", "UniccError", "BridgeError",
]
