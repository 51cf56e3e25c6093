"""unicc.caffe.evaluate on N ranks against one process: ROWS random rows through the MLP (batch B per
forward on each rank), weights drawn from the seed (the same on every rank). Rank 0 also forwards all
rows at once through a plain pycaffe net of batch ROWS and counts correct guesses, the confusion
matrix and the loss (SoftmaxWithLoss's mean times ROWS) itself. Prints "TOTALS <samples> <correct>
<confusion digest> <loss>" every rank and "REF ..." the same way on rank 0. With "short" as the 5th
argument, rank 1 passes one label too few."""

import hashlib
import os
import sys

os.environ.setdefault("GLOG_minloglevel", "2")
import caffe  # noqa: E402
import numpy as np  # noqa: E402

import unicc.caffe as uc  # noqa: E402
from nets import CLASSES, DIM, MLP, dataset, write  # noqa: E402

seed, folder, batch, rows = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
short = len(sys.argv) > 5 and sys.argv[5] == "short"  # rank 1 passes one label too few (bad input)


def net_of(batch_size):
    path = write(os.path.join(folder, "eval-%d.prototxt" % batch_size), MLP % {"batch": batch_size, "dim": DIM, "classes": CLASSES, "hidden": 16})
    net = caffe.Net(path, caffe.TEST)
    rng = np.random.default_rng(seed + 1)
    for blobs in net.params.values():
        for blob in blobs:
            blob.data[...] = rng.standard_normal(blob.data.shape) * 0.5
    return net


def show(tag, n, correct, confusion, loss):
    digest = hashlib.sha256(np.ascontiguousarray(confusion, np.int64).tobytes()).hexdigest()[:16]
    print("%s %d %d %s %.9e" % (tag, n, correct, digest, loss))


b = uc.init()
x, y = dataset(seed, rows)
if short and b.rank == 1:
    y = y[:-1]
t = uc.evaluate(net_of(batch), x, y, scores="ip4", confusion=True)
show("TOTALS", t["samples"], t["correct"], t["confusion"], t["loss_sum"])
print("ACCURACY %.6f" % t["accuracy"])
if b.rank == 0:
    ref = net_of(rows)
    ref.set_input_arrays(x, y)
    ref.forward()
    guess = ref.blobs["ip4"].data.reshape(rows, -1).argmax(axis=1)
    confusion = np.zeros((CLASSES, CLASSES), np.int64)
    for label, g in zip(y.astype(int), guess):
        confusion[label, g] += 1
    show("REF", rows, int((guess == y.astype(int)).sum()), confusion, float(ref.blobs["loss"].data) * rows)
