"""unicc for Keras 3 on TensorFlow, with Horovod's names:

    import unicc.tensorflow.keras as hvd    # was: import horovod.tensorflow.keras as hvd
    hvd.init()
    model.compile(optimizer=hvd.DistributedOptimizer(keras.optimizers.Adam(1e-3 * hvd.size())), ...)
    model.fit(x, y, callbacks=[hvd.callbacks.BroadcastGlobalVariablesCallback(0),
                               hvd.callbacks.MetricAverageCallback()], verbose=hvd.rank() == 0)
"""

import keras

from .. import (  # noqa: F401
    Average,
    BridgeError,
    Compression,
    Max,
    Min,
    Product,
    Sum,
    UniccError,
    allreduce,
    barrier,
    broadcast,
    broadcast_object,
    broadcast_variables,
    exchange_stats,
    grouped_allreduce,
    init,
    is_initialized,
    local_rank,
    local_size,
    rank,
    shutdown,
    size,
)
from . import callbacks  # noqa: F401
from .optimizer import DistributedOptimizer  # noqa: F401

if keras.backend.backend() != "tensorflow":
    raise ImportError("unicc.tensorflow.keras needs Keras' tensorflow backend (KERAS_BACKEND=tensorflow), not %r"
                      % keras.backend.backend())
