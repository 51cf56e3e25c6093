"""Each rank's part of the data.

MemoryData: `shard_batches(x, batch)` (and for labels alike) gives the rows this rank feeds through
net.set_input_arrays, such that the size ranks' batches of `batch` rows together are exactly the
global batch of size*batch rows that one process would take from x: iteration i's global batch is
rows [i*size*batch, (i+1)*size*batch) of x, and rank r takes its r-th part.

Data (LMDB/LevelDB) and HDF5Data: Caffe shards these itself once it knows this rank's place
(unicc.caffe.init(), which get_solver calls before building the nets): of the stream of records it
reads, record k goes to rank k % size, so with `batch` rows per rank iteration i's global batch is
again records [i*size*batch, (i+1)*size*batch), across file ends and epochs alike. `write_hdf5`
writes arrays the way HDF5Data reads them. Each rank still opens every HDF5 file (HDF5Data loads a
whole file into memory and skips the other ranks' rows), so keep files small (rows_per_file).
"""

import os

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


def write_hdf5(folder, rows_per_file=None, **arrays):
    """Writes the arrays (same length; each becomes the HDF5Data top of its name, as float32) into
    folder as files of rows_per_file rows (default: one file), and the list of those files that an
    HDF5Data layer's `source` names; returns the list's path. Rows stay in order. Leave the layer's
    `shuffle` off: each rank's HDF5Data would permute with its own process's rand(), alike only while
    every rank has made the same calls to it (measured: the ranks' parts stayed disjoint, but no
    longer matched one process's batches)."""
    import h5py

    lengths = {k: len(v) for k, v in arrays.items()}
    if not arrays or len(set(lengths.values())) != 1:
        raise ValueError("unicc.caffe: write_hdf5 needs arrays of one length, got %s" % (lengths or "none"))
    n = next(iter(lengths.values()))
    step = rows_per_file or n
    files = []
    for i, at in enumerate(range(0, n, step)):
        path = os.path.join(folder, "part-%05d.h5" % i)
        with h5py.File(path, "w") as f:
            for k, v in arrays.items():
                f.create_dataset(k, data=np.ascontiguousarray(v[at:at + step], np.float32))
        files.append(os.path.abspath(path))
    source = os.path.join(folder, "parts.txt")
    with open(source, "w") as f:
        f.write("".join(p + "\n" for p in files))
    return source
