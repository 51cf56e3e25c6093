"""Elastic training with gluon and unicc.mxnet.DistributedTrainer (test/elastic.test.ts).

    elastic.py train SEED STEPS COMMIT_EVERY KILLS
        trains under unicc.elastic.run, the net and the Trainer (SGD with momentum) kept by
        unicc.mxnet.elastic.GluonState; KILLS "2@5": worker 2 SIGKILLs itself in step 5, after its
        forward pass. Rank 0 prints "START step=S size=N" at each (re)start; every rank prints
        "FINAL <weights>".
    elastic.py reference SEED STEPS SCHEDULE
        the same steps in one process without unicc ("0:3,4:2": 3 ranks from step 0, 2 from step
        4), each step's gradient summed over every rank's shard. Prints "FINAL <weights>".

float64; each step's rows depend on (step, rank, size) only.
"""

import os
import signal
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")

import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402
from mxnet import autograd, gluon  # noqa: E402

ROWS, PER_RANK, FEATURES = 96, 4, 6
OPTIMIZER = ("sgd", {"learning_rate": 0.1, "momentum": 0.9})


def data(seed):
    rng = np.random.RandomState(seed)
    return rng.randn(ROWS, FEATURES), rng.randn(ROWS, 1)


def model(seed):
    mx.random.seed(seed + 1)
    net = gluon.nn.Sequential()
    net.add(gluon.nn.Dense(5, in_units=FEATURES, activation="tanh"), gluon.nn.Dense(1, in_units=5))
    net.initialize(mx.init.Uniform(0.5))
    net.cast("float64")
    return net


def shard(x, y, step, rank, size):
    rows = [(step * 7 + i) % ROWS for i in range(size * PER_RANK)][rank::size]
    return mx.nd.array(x[rows], dtype="float64"), mx.nd.array(y[rows], dtype="float64")


def weights(net):
    return " ".join(repr(v) for v in np.concatenate([p.data().asnumpy().ravel() for p in net.collect_params().values()]))


LOSS = gluon.loss.L2Loss()


def train(seed, steps, commit_every, kills):
    import unicc
    import unicc.elastic
    import unicc.mxnet as um
    from unicc.mxnet.elastic import GluonState

    um.init()
    kill = dict(k.split("@") for k in kills.split(",") if k).get(os.environ.get("UNICC_ELASTIC_ID"))
    x, y = data(seed)
    net = model(seed)
    trainer = um.DistributedTrainer(net.collect_params(), *OPTIMIZER)
    state = unicc.elastic.State(net=GluonState(net.collect_params(), trainer), step=0)

    @unicc.elastic.run
    def loop(state):
        if um.rank() == 0:
            print("START step=%d size=%d" % (state.step, um.size()), flush=True)
        while state.step < steps:
            bx, by = shard(x, y, state.step, um.rank(), um.size())
            with autograd.record():
                loss = LOSS(net(bx), by)
            if kill == str(state.step):
                os.kill(os.getpid(), signal.SIGKILL)
            loss.backward()
            trainer.step(PER_RANK)
            state.step += 1
            if state.step % commit_every == 0:
                state.commit()

    loop(state)
    print("FINAL " + weights(net), flush=True)
    unicc.shutdown()


def reference(seed, steps, schedule):
    x, y = data(seed)
    net = model(seed)
    for p in net.collect_params().values():
        p.grad_req = "add"
    trainer = gluon.Trainer(net.collect_params(), *OPTIMIZER, kvstore=None)
    starts = sorted((int(a), int(b)) for a, b in (p.split(":") for p in schedule.split(",")))
    for step in range(steps):
        size = [n for s, n in starts if s <= step][-1]
        net.collect_params().zero_grad()
        for rank in range(size):
            bx, by = shard(x, y, step, rank, size)
            with autograd.record():
                loss = LOSS(net(bx), by)
            loss.backward()
        trainer.step(size * PER_RANK)
    print("FINAL " + weights(net), flush=True)


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "train":
        train(int(args[0]), int(args[1]), int(args[2]), args[3] if len(args) > 3 else "")
    else:
        reference(int(args[0]), int(args[1]), args[2])
