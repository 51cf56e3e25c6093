"""The gradient exchange alone, as train.py's step does it: the 784-128-10 MLP's four gradients
(101,770 float32s) through hvd.grouped_allreduce with names, inside a tf.function, 300 times.
Rank 0 prints `exchange <json>` with the median and the 10th/90th percentile in microseconds.

    npx unicc run -np 4 <venv>/bin/python examples/keras-digits/exchange.py [--hidden 128] [--calls 300]
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import unicc.tensorflow as hvd  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--hidden", type=int, default=128)
p.add_argument("--calls", type=int, default=300)
args = p.parse_args()
hvd.init()
tf.config.threading.set_intra_op_parallelism_threads(1)
shapes = [(784, args.hidden), (args.hidden,), (args.hidden, 10), (10,)]
grads = [tf.random.normal(s, seed=i) for i, s in enumerate(shapes)]
names = ["bench.%d" % i for i in range(len(shapes))]
exchange = tf.function(lambda gs: hvd.grouped_allreduce(gs, names=names))
times = []
for i in range(args.calls + 20):
    t0 = time.perf_counter()
    exchange(grads)
    if i >= 20:  # after tracing and warm-up
        times.append(time.perf_counter() - t0)
us = np.percentile(np.asarray(times) * 1e6, [10, 50, 90])
if hvd.rank() == 0:
    print("exchange " + json.dumps({"ranks": hvd.size(), "floats": int(sum(np.prod(s) for s in shapes)),
                                    "p10_us": us[0], "median_us": us[1], "p90_us": us[2]}), flush=True)
