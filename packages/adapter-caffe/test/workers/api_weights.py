"""The Python API path of the train test: get_solver + step(ITERS) over the LMDB, on every rank; rank 0
then compares its weights with the caffemodel `unicc-caffe train` wrote for the same solver file, and
with one process trained on the whole batch. Prints "SAME <err vs cli> <err vs one process>"."""

import os
import sys

os.environ.setdefault("GLOG_minloglevel", "2")
import caffe  # noqa: E402

import unicc.caffe as uc  # noqa: E402
from nets import rel_err, weights, write_solver  # noqa: E402


folder, db, batch, iters = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
b = uc.init()
# The same file cli_solver.py wrote for the `unicc-caffe train` job (written again, identically).
solver = uc.get_solver(write_solver(folder, "sgd", batch, max_iter=iters, db=db, snapshot_after_train=True,
                                    extra='snapshot_prefix: "%s/cli"' % folder))
cli_model = os.path.join(folder, "cli_iter_%d.caffemodel" % iters)
start = weights(solver.net)
solver.step(iters)
if b.rank == 0:
    mine = weights(solver.net)
    solver.net.copy_from(cli_model)
    cli = weights(solver.net)
    caffe.set_solver_count(1)  # the reference reads every record itself
    ref = caffe.get_solver(write_solver(folder, "sgd", b.size * batch, db=db))
    for k, v in ref.net.params.items():
        for j, blob in enumerate(v):
            blob.data[...] = start["%s#%d" % (k, j)]
    ref.step(iters)
    print("SAME %.2e %.2e moved %.2e" % (rel_err(mine, cli), rel_err(mine, weights(ref.net)), rel_err(start, cli)))
