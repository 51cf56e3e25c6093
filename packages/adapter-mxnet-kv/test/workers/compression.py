# fp16 on the wire (between hosts; arithmetic stays fp32): pushpull of random values against their
# exact sum, and a Trainer step (compression_params={'type': 'fp16'}) against the 1-process step.
# The rounding must be visible (above fp32's) and within half precision's bound.
import os
import sys

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from common import data, net, rel_diff, report, weights

import unicc.mxnet as um

seed, b = int(sys.argv[1]), 8
um.init()
r, n = um.rank(), um.size()
EPS16 = 2.0 ** -11  # half precision's unit roundoff

shapes = [(1000,), (64, 33), (5,)]
mine = [np.random.RandomState(seed + 10 * r + i).randn(*s).astype(np.float32) for i, s in enumerate(shapes)]
exact = [sum(np.random.RandomState(seed + 10 * q + i).randn(*s).astype(np.float64) for q in range(n))
         for i, s in enumerate(shapes)]
absum = [sum(np.abs(np.random.RandomState(seed + 10 * q + i).randn(*s)) for q in range(n)) for i, s in enumerate(shapes)]
# With UNICC_COMPRESSION=fp16 in the environment the fp16 store is made without the option (the
# engine's default then applies) and the fp32 one must override it with "none".
from_env = os.environ.get("UNICC_COMPRESSION") == "fp16"
for comp in ("none", "fp16"):
    kv = um.UniccKVStore(compression=None if comp == "fp16" and from_env else comp)
    keys = ["%s.%d" % (comp, i) for i in range(len(shapes))]
    vals = [mx.nd.array(v) for v in mine]
    kv.pushpull(keys, vals)
    err = max(float(np.max(np.abs(v.asnumpy() - e) / a)) for v, e, a in zip(vals, exact, absum))
    # Each of the n values and every partial sum may be rounded once to 16 bits on its way.
    bound = 2 * n * EPS16 if comp == "fp16" else 4 * n * 2.0 ** -24
    print("ERR pushpull %s %.3e bound %.3e" % (comp, err, bound), flush=True)
    if not err <= bound:
        raise SystemExit("pushpull with compression %s: error %.3e over the bound %.3e" % (comp, err, bound))
    if comp == "fp16" and not err > 16 * 2.0 ** -24 * n:
        raise SystemExit("fp16 pushpull shows no 16-bit rounding (error %.3e): values did not travel in fp16" % err)

X, Y = data(seed, n * b)
loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
OPT = {"learning_rate": 0.5}
ref = net(seed)
with autograd.record():
    loss = loss_fn(ref(mx.nd.array(X)), mx.nd.array(Y))
loss.backward()
gluon.Trainer(ref.collect_params(), "sgd", OPT, kvstore=None).step(n * b)
m = net(seed + r)
t = gluon.Trainer(m.collect_params(), "sgd", OPT, kvstore="dist_sync_unicc", compression_params={"type": "fp16"})
t.step(1, ignore_stale_grad=True)  # the broadcast of rank 0's weights only
with autograd.record():
    loss = loss_fn(m(mx.nd.array(X[r * b:(r + 1) * b])), mx.nd.array(Y[r * b:(r + 1) * b]))
loss.backward()
t.step(n * b)
report("gluon.Trainer(kvstore='dist_sync_unicc', compression_params={'type': 'fp16'})", weights(m), weights(ref), 1e-2)
print("OK compression rank %d of %d" % (r, n), flush=True)
