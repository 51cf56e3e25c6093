"""Prints the path of the solver file api_weights.py trains with (for the `unicc-caffe train` job)."""
import sys

from nets import write_solver

folder, db, batch, iters = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
print(write_solver(folder, "sgd", batch, max_iter=iters, db=db, snapshot_after_train=True, extra='snapshot_prefix: "%s/cli"' % folder))
