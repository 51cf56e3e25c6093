"""One worker of the KVStore benchmark (bench/run.mjs starts it on every rank): the ResNet-50
gradient set (161 fp32 tensors, 25.6 M values) pushed and pulled per step through a KVStore, as
update_on_kvstore=False training does. Rank 0 prints one `RESULT {json}` line: the median step in
seconds and the ranks' count. The first step's sums are checked.

  kv_bench.py --store dist_sync_unicc|dist_sync [--compression none|fp16] --workload FILE
              [--warmup N] [--steps N]

dist_sync is MXNet's own parameter server (ps-lite; the DMLC_* variables say where the scheduler
is, and the servers run apart); dist_sync_unicc is unicc's, one list pushpull per step.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--store", required=True)
ap.add_argument("--compression", default="none")
ap.add_argument("--workload", required=True)
ap.add_argument("--warmup", type=int, default=3)
ap.add_argument("--steps", type=int, default=8)
args = ap.parse_args()

if args.store == "dist_sync_unicc":
    import unicc.mxnet as um

    kv = um.UniccKVStore(compression=args.compression)
else:
    kv = mx.kv.create(args.store)
rank, n = kv.rank, kv.num_workers
shapes = [tuple(t["shape"]) for t in json.load(open(args.workload))["tensors"]]
keys = list(range(len(shapes)))
rng = np.random.RandomState(7)
base = [rng.randn(*s).astype(np.float32) for s in shapes]
vals = [mx.nd.array(b * (rank + 1)) for b in base]  # sum over ranks: base * n(n+1)/2
outs = [mx.nd.zeros(s) for s in shapes]
kv.init(keys, [mx.nd.zeros(s) for s in shapes])


def step():
    kv.pushpull(keys, vals, out=outs)
    mx.nd.waitall()


step()
factor = n * (n + 1) / 2
worst = max(float(np.max(np.abs(o.asnumpy() - b * factor)) / (np.max(np.abs(b)) * factor)) for o, b in zip(outs, base))
tol = 1e-2 if args.compression != "none" else 1e-5
if not worst <= tol:
    sys.exit("rank %d: %s sums are off by %.3e (limit %.0e)" % (rank, args.store, worst, tol))
for _ in range(args.warmup):
    step()
ts = []
for _ in range(args.steps):
    t0 = time.perf_counter()
    step()
    ts.append(time.perf_counter() - t0)
if rank == 0:
    print("RESULT " + json.dumps({"store": args.store, "compression": args.compression, "ranks": n,
                                  "median_s": sorted(ts)[len(ts) // 2], "steps_s": ts, "first_step_error": worst}), flush=True)
