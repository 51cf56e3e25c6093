# Shared by the workers: data and models from seeds the test passes, and the comparison lines
# (DIFF <what> <relative difference>) that the vitest test checks.
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402
from mxnet import gluon  # noqa: E402

IN, HIDDEN, CLASSES = 20, 16, 10


def data(seed, n):
    rng = np.random.RandomState(seed)
    return rng.randn(n, IN).astype(np.float32), rng.randint(0, CLASSES, n).astype(np.float32)


def net(seed):
    """A small MLP whose initial weights come from `seed` (so ranks given different seeds differ)."""
    mx.random.seed(seed)
    n = gluon.nn.HybridSequential()
    n.add(gluon.nn.Dense(HIDDEN, in_units=IN, activation="tanh"), gluon.nn.Dense(CLASSES, in_units=HIDDEN))
    n.initialize(mx.init.Uniform(0.5))
    return n


def weights(n):
    return [p.data().asnumpy() for p in n.collect_params().values()]


def rel_diff(a, b):
    return max(float(np.linalg.norm(x - y) / np.linalg.norm(y)) for x, y in zip(a, b))


def report(what, got, want, tol):
    d = rel_diff(got, want)
    print("DIFF %s %.3e" % (what, d), flush=True)
    if not d <= tol:
        raise SystemExit("%s differs from the 1-process reference by %.3e (limit %.0e)" % (what, d, tol))
