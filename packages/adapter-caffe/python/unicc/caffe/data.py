"""Each rank's part of the data.

MemoryData: `shard_batches(x, batch)` (and for labels alike) gives the rows this rank feeds through
net.set_input_arrays, such that the size ranks' batches of `batch` rows together are exactly the
global batch of size*batch rows that one process would take from x: iteration i's global batch is
rows [i*size*batch, (i+1)*size*batch) of x, and rank r takes its r-th part.

Data (LMDB/LevelDB) and HDF5Data: Caffe shards these itself once it knows this rank's place
(unicc.caffe.init(), which get_solver calls before building the nets): record k goes to rank k % size.
"""

import numpy as np

import unicc


def shard_batches(x, batch, rank=None, size=None):
    """The rows of x this rank reads with `batch` rows per iteration (see the module's notes); x's
    length must be a multiple of size*batch."""
    if rank is None or size is None:
        b = unicc.bridge()
        rank, size = b.rank, b.size
    x = np.asarray(x)
    step = size * batch
    if len(x) % step:
        raise ValueError("unicc.caffe: %d rows are not a whole number of global batches of %d (%d ranks x %d)"
                         % (len(x), step, size, batch))
    parts = x.reshape((len(x) // step, size, batch) + x.shape[1:])[:, rank]
    return np.ascontiguousarray(parts.reshape((-1,) + x.shape[1:]))
