"""One worker of the sharded-classifier benchmark (bench/run.mjs --sharded): a training step of the
last layer of a huge classifier (--classes x --dim fp32 weights, softmax cross-entropy) on embeddings
of --batch samples per rank, two ways:
  sharded:  unicc.mxnet.ShardedSoftmaxClassifier (each rank holds 1/N of the classes)
  data:     plain data parallelism: the full matrix on every rank, its gradient allreduced each step
            (DistributedTrainer)
Rank 0 prints `RESULT {json}`: the median step in seconds and the largest peak RSS of any rank.

  sharded_bench.py --mode sharded|data [--classes 1000000] [--dim 128] [--batch 16] [--steps 3]
"""

import argparse
import json
import os
import resource
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402
from mxnet import autograd, gluon  # noqa: E402

import unicc.mxnet as um  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--mode", choices=["sharded", "data"], required=True)
ap.add_argument("--classes", type=int, default=1_000_000)
ap.add_argument("--dim", type=int, default=128)
ap.add_argument("--batch", type=int, default=16)
ap.add_argument("--steps", type=int, default=3)
args = ap.parse_args()
um.init()
r, n = um.rank(), um.size()
rng = np.random.RandomState(r)
x = mx.nd.array(rng.randn(args.batch, args.dim))
x.attach_grad()  # as if a data-parallel body sat below: its gradient is computed too
y = mx.nd.array(rng.randint(0, args.classes, args.batch))

if args.mode == "sharded":
    clf = um.ShardedSoftmaxClassifier(args.classes, args.dim)
    clf.initialize(mx.init.Normal(0.01))
    forward = lambda: clf(x, y)  # noqa: E731
    params = clf.collect_params()
else:
    fc = gluon.nn.Dense(args.classes, in_units=args.dim, use_bias=False)
    fc.initialize(mx.init.Normal(0.01))
    ce = gluon.loss.SoftmaxCrossEntropyLoss()
    forward = lambda: ce(fc(x), y)  # noqa: E731
    params = fc.collect_params()
trainer = um.DistributedTrainer(params, "sgd", {"learning_rate": 0.1})


def step():
    with autograd.record():
        loss = forward()
    loss.backward()
    trainer.step(args.batch)
    mx.nd.waitall()


step()  # warm-up: slabs, the engine's first negotiation
ts = []
for _ in range(args.steps):
    t0 = time.perf_counter()
    step()
    ts.append(time.perf_counter() - t0)
peak = float(um.allgather(mx.nd.array([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0], dtype=np.float64)).max().asscalar())
if r == 0:
    print("RESULT " + json.dumps({"mode": args.mode, "ranks": n, "classes": args.classes, "dim": args.dim, "batch": args.batch,
                                  "median_s": sorted(ts)[len(ts) // 2], "steps_s": ts, "peak_rss_bytes": peak,
                                  "weights_per_rank": int(sum(p.data().size for p in params.values()))}), flush=True)
