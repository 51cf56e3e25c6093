"""Shared by the Keras test workers: one thread per op (ranks share 2 cores), seeded data and models,
and the relative difference the tests bound."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)

import keras  # noqa: E402


def data(seed, n, features=12, classes=5):
    g = np.random.default_rng(seed)
    return g.standard_normal((n, features)).astype(np.float32), g.integers(0, classes, n).astype(np.int64)


def make_model(seed, features=12, classes=5):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((features,)), keras.layers.Dense(16, activation="tanh"),
                             keras.layers.Dense(classes)])


def loss_fn():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def rank_batches(x, r, n, b):
    """Rank r's part of every global batch of n*b rows: batch k of rank r is rows [k*n*b + r*b, +b)."""
    idx = np.concatenate([np.arange(k * n * b + r * b, k * n * b + (r + 1) * b) for k in range(len(x) // (n * b))])
    return x[idx]


def rel_diff(weights, reference):
    return max(float(np.linalg.norm(w - q) / np.linalg.norm(q)) for w, q in zip(weights, reference))
