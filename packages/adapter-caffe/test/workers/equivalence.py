"""ITERS iterations on N ranks with batch B each equal ITERS iterations of one process with batch N*B.
Rank 0 computes the reference itself with plain pycaffe (no unicc) from the same initial weights and
data. Prints "OK <solver> err=<e> moved=<m> blobs=<reduced> values=<their values>" per solver (DIFF instead of OK above 1e-5), and
every rank a digest of its weights. Optional: COMPRESSION (none, fp16, bf16), HIDDEN (units per
hidden layer, default 16), then flags: "overlap" (submit from the per-layer backward hook) and
"tanh" (TanH hidden layers instead of ReLU: no kink, so a rounding cannot flip a unit on or off and
move the weights by a whole sample's gradient)."""

import hashlib
import os
import sys

os.environ.setdefault("GLOG_minloglevel", "2")
import caffe  # noqa: E402
import numpy as np  # noqa: E402

import unicc.caffe as uc  # noqa: E402
from nets import dataset, rel_err, weights, write_solver  # noqa: E402

seed, folder, batch, iters = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
kinds = sys.argv[5].split(",")
compression = sys.argv[6] if len(sys.argv) > 6 else None
hidden = int(sys.argv[7]) if len(sys.argv) > 7 else 16
flags = set(sys.argv[8:])
overlap = "overlap" in flags
activation = "TanH" if "tanh" in flags else "ReLU"
b = uc.init()
x, y = dataset(seed, iters * b.size * batch)
for kind in kinds:
    solver = uc.get_solver(write_solver(folder, kind, batch, hidden=hidden, activation=activation), compression=compression, overlap=overlap)
    mine = (uc.data.shard_batches(x, batch), uc.data.shard_batches(y, batch))
    solver.net.set_input_arrays(*mine)
    start = weights(solver.net)  # before the first step, which broadcasts rank 0's
    solver.step(iters)
    got = weights(solver.net)
    digest = hashlib.sha256(b"".join(got[k].tobytes() for k in sorted(got))).hexdigest()[:16]
    print("WEIGHTS %s %s" % (kind, digest))
    if overlap:
        print("OVERLAPPED %s %d" % (kind, solver.unicc.overlapped))
    if b.rank == 0:
        ref = caffe.get_solver(write_solver(folder, kind, b.size * batch, hidden=hidden, activation=activation))
        for k, v in ref.net.params.items():
            for j, blob in enumerate(v):
                blob.data[...] = start["%s#%d" % (k, j)]
        ref.net.set_input_arrays(x, y)
        ref.step(iters)
        err = rel_err(got, weights(ref.net))
        moved = rel_err(start, weights(ref.net))  # how far training moved them: the check must be able to fail
        print("%s %s err=%.2e moved=%.2e blobs=%d values=%d" % ("OK" if err <= 1e-5 and moved > 1e-3 else "DIFF", kind, err, moved,
                                                                 len(solver.unicc.blobs), sum(b.count for _, b in solver.unicc.blobs)))
