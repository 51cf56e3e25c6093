# Rank V kills itself while the others are in a Trainer step: every other rank must raise
# UniccError naming rank V (the test checks how soon, from the DYING and ERROR times).
import os
import signal
import sys
import time

import mxnet as mx
from mxnet import autograd, gluon

import unicc.mxnet as um

victim = int(sys.argv[1])
# The launcher stops everybody once the victim dies; outlive its SIGTERM so that what unicc itself
# reports can be checked (its SIGKILL after the grace period still ends us).
signal.signal(signal.SIGTERM, lambda *_: print("SIGTERM ignored", flush=True))
um.init()
r = um.rank()
net = gluon.nn.Dense(8, in_units=4)
net.initialize()
t = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1}, kvstore="dist_sync_unicc")


def ms():
    return int(time.time() * 1000)


def step():
    with autograd.record():
        loss = net(mx.nd.ones((2, 4))).sum()
    loss.backward()
    t.step(2)


for _ in range(3):
    step()
if r == victim:
    time.sleep(0.5)  # the others are waiting in a pushpull by now
    print("DYING %d" % ms(), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
try:
    while True:
        step()
except um.UniccError as e:
    print("ERROR %d %s: %s" % (ms(), type(e).__name__, str(e).replace("\n", " ")), flush=True)
    sys.exit(3)
