"""ITERS iterations of SGD on N ranks, each reading BATCH rows per iteration through Caffe's HDF5Data
layer from the list file SOURCE (all ranks the same file, as a user would). Every rank prints the
rows it read ("ROWS i,j,..." from the layer's "index" top) and a digest of its weights; rank 0 then
trains one process with batch N*BATCH from the same start and prints "OK err=<e> moved=<m>"."""

import hashlib
import os
import sys

os.environ.setdefault("GLOG_minloglevel", "2")
import caffe  # noqa: E402

import unicc.caffe as uc  # noqa: E402
from nets import rel_err, weights, write_solver  # noqa: E402

folder, source, batch, iters = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
b = uc.init()
solver = uc.get_solver(write_solver(folder, "sgd", batch, hdf5=source))
start = weights(solver.net)
rows = []
# Runs after unicc's callback: the forward pass of this iteration has filled "index".
solver.add_callback(lambda: None, lambda: rows.extend(int(v) for v in solver.net.blobs["index"].data.reshape(-1)))
solver.step(iters)
got = weights(solver.net)
print("ROWS %s" % ",".join(map(str, rows)))
print("WEIGHTS %s" % hashlib.sha256(b"".join(got[k].tobytes() for k in sorted(got))).hexdigest()[:16])
if b.rank == 0:
    caffe.set_solver_count(1)  # the reference reads every row itself
    ref = caffe.get_solver(write_solver(folder, "sgd", b.size * batch, hdf5=source))
    for k, v in ref.net.params.items():
        for j, blob in enumerate(v):
            blob.data[...] = start["%s#%d" % (k, j)]
    ref.step(iters)
    print("OK err=%.2e moved=%.2e" % (rel_err(got, weights(ref.net)), rel_err(start, weights(ref.net))))
