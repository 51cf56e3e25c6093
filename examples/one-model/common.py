"""What the one-model trainers share: the digits split, each rank's share of every global batch,
and the line run.sh reads. Every framework trains the same 784-128-10 classifier with Adam on the
same 8000 images, global batch 64, the same shuffles."""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # examples/: digits.py
from digits import load_digits  # noqa: E402

TRAIN, HIDDEN, BATCH, LR = 8000, 128, 64, 1e-3


def parse():
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--out", required=True, help="the .onnx file rank 0 writes")
    return p.parse_args()


def train_set():
    x, y = load_digits()
    return x[:TRAIN], y[:TRAIN]


def test_set():
    """What unicc-eval's digits:test holds."""
    x, y = load_digits()
    return x[TRAIN:], y[TRAIN:]


def batches(epoch, rank, size):
    """Index arrays of this rank's part of each global batch of the epoch's shuffle."""
    per_rank = BATCH // size
    order = np.random.RandomState(1000 + epoch).permutation(TRAIN)
    for step in range(TRAIN // BATCH):
        yield order[step * BATCH + rank * per_rank: step * BATCH + (rank + 1) * per_rank]


def report(framework, seconds, epochs, size, predictions):
    """The line run.sh reads; `predictions`: the framework's own classes for test_set(), to set
    beside what onnxruntime makes of the export."""
    accuracy = float(np.mean(np.asarray(predictions) == test_set()[1]))
    print("one-model: " + json.dumps({"framework": framework, "ranks": size, "ownAccuracy": accuracy,
                                       "imagesPerSecond": epochs * (TRAIN // BATCH) * BATCH / seconds}), flush=True)
