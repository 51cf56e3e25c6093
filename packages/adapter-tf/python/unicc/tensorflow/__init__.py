"""unicc for TensorFlow 2, with Horovod's names:

    import unicc.tensorflow as hvd          # was: import horovod.tensorflow as hvd
    hvd.init()
    with tf.GradientTape() as tape:
        loss = ...
    tape = hvd.DistributedGradientTape(tape)
    grads = tape.gradient(loss, model.trainable_variables)   # averaged over the ranks

Keras 3: unicc.tensorflow.keras (DistributedOptimizer and callbacks).
"""

import pickle

import numpy as np
import tensorflow as tf

import unicc
from unicc import BridgeError, UniccError, local_rank, local_size, rank, shutdown, size  # noqa: F401

from ._ops import (  # noqa: F401
    Average,
    Compression,
    Max,
    Min,
    Product,
    Sum,
    allreduce,
    broadcast,
    exchange_stats,
    grouped_allreduce,
    grouped_broadcast,
)
from .gradient_tape import DistributedGradientTape  # noqa: F401


def init(comm=None):
    """Starts this rank's bridge (from the environment `unicc run` sets); safe to call again.
    `comm` (Horovod's MPI communicator argument) is not supported."""
    if comm is not None:
        raise ValueError("unicc.tensorflow.init: ranks come from `unicc run`; a communicator cannot be passed")
    unicc.init()


def is_initialized():
    return unicc._bridge is not None


def barrier():
    unicc.bridge().barrier()


def broadcast_variables(variables, root_rank=0):
    """Assigns rank root_rank's values to every variable (tf.Variable or keras.Variable), in one
    call: eagerly, or as ops of the tf.function being traced."""
    variables = list(variables)
    values = grouped_broadcast([tf.convert_to_tensor(v) for v in variables], root_rank)
    for v, t in zip(variables, values):
        v.assign(t)  # in a tf.function, automatic control dependencies keep these assignments


def broadcast_object(obj, root_rank=0, name=None):
    """Rank root_rank's obj (anything pickle writes) on every rank. Eager code only."""
    del name
    data = np.frombuffer(pickle.dumps(obj), np.uint8) if rank() == root_rank else np.zeros(0, np.uint8)
    length = int(broadcast(tf.constant([data.size], tf.int64), root_rank)[0])
    payload = data if rank() == root_rank else np.zeros(length, np.uint8)
    got = broadcast(tf.constant(payload), root_rank).numpy()
    return obj if rank() == root_rank else pickle.loads(got.tobytes())


__all__ = [
    "init", "shutdown", "is_initialized", "rank", "size", "local_rank", "local_size", "barrier",
    "allreduce", "grouped_allreduce", "broadcast", "grouped_broadcast", "broadcast_variables", "broadcast_object",
    "exchange_stats",
    "DistributedGradientTape", "Sum", "Average", "Min", "Max", "Product", "Compression", "UniccError", "BridgeError",
]
