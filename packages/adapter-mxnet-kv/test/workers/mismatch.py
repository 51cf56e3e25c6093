# Rank V builds its first layer transposed: the same number of weights, another shape. The
# Trainer's first step must fail on every rank with an error naming the key and the ranks.
import sys

import mxnet as mx
from mxnet import autograd, gluon

import unicc.mxnet as um

victim = int(sys.argv[1])
um.init()
r = um.rank()
units, inputs = (20, 16) if r == victim else (16, 20)
net = gluon.nn.HybridSequential()
net.add(gluon.nn.Dense(units, in_units=inputs, use_bias=False), gluon.nn.Dense(3, in_units=units))
net.initialize()
t = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1}, kvstore="dist_sync_unicc")
with autograd.record():
    loss = net(mx.nd.ones((2, inputs))).sum()
loss.backward()
try:
    t.step(2)
except um.UniccError as e:
    print("ERROR %s" % str(e).replace("\n", " "), flush=True)
    sys.exit(3)
print("NO ERROR", flush=True)
