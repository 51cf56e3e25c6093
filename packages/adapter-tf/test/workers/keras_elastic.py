"""Elastic training with Keras 3 and unicc.tensorflow.keras.DistributedOptimizer (keras.test.ts).

    keras_elastic.py train SEED STEPS COMMIT_EVERY KILLS
        an eager custom loop under unicc.elastic.run, the model and the optimizer (SGD with
        momentum) kept by unicc.tensorflow.keras.elastic.KerasState; KILLS "2@5": worker 2
        SIGKILLs itself in step 5, after its forward pass. Rank 0 prints "START step=S size=N" at
        each (re)start; every rank prints "FINAL <weights>".
    keras_elastic.py reference SEED STEPS SCHEDULE
        the same steps in one process without unicc ("0:3,4:2": 3 ranks from step 0, 2 from step
        4), each step applying the mean of every rank's gradient. Prints "FINAL <weights>".

float64; each step's rows depend on (step, rank, size) only.
"""

import os
import signal
import sys

from keras_common import keras, np, tf

ROWS, PER_RANK, FEATURES = 96, 4, 6
keras.config.set_floatx("float64")


def data(seed):
    g = np.random.default_rng(seed)
    return g.standard_normal((ROWS, FEATURES)), g.standard_normal((ROWS, 1))


def model(seed):
    keras.utils.set_random_seed(seed + 1)
    return keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(5, activation="tanh"), keras.layers.Dense(1)])


def sgd():
    return keras.optimizers.SGD(0.1, momentum=0.9)


def shard(x, y, step, rank, size):
    rows = [(step * 7 + i) % ROWS for i in range(size * PER_RANK)][rank::size]
    return x[rows], y[rows]


def gradients(m, bx, by):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(m(bx) - by))
    return tape.gradient(loss, m.trainable_variables)


def weights(m):
    return " ".join(repr(float(v)) for v in np.concatenate([w.ravel() for w in m.get_weights()]))


def train(seed, steps, commit_every, kills):
    import unicc.elastic
    import unicc.tensorflow.keras as hvd
    from unicc.tensorflow.keras.elastic import KerasState

    hvd.init()
    kill = dict(k.split("@") for k in kills.split(",") if k).get(os.environ.get("UNICC_ELASTIC_ID"))
    x, y = data(seed)
    m = model(seed)
    opt = hvd.DistributedOptimizer(sgd())
    state = unicc.elastic.State(model=KerasState(m, opt), step=0)

    @unicc.elastic.run
    def loop(state):
        if hvd.rank() == 0:
            print("START step=%d size=%d" % (state.step, hvd.size()), flush=True)
        while state.step < steps:
            bx, by = shard(x, y, state.step, hvd.rank(), hvd.size())
            if kill == str(state.step):
                os.kill(os.getpid(), signal.SIGKILL)
            opt.apply(gradients(m, bx, by), m.trainable_variables)
            state.step += 1
            if state.step % commit_every == 0:
                state.commit()

    loop(state)
    print("FINAL " + weights(m), flush=True)
    hvd.shutdown()


def reference(seed, steps, schedule):
    x, y = data(seed)
    m = model(seed)
    opt = sgd()
    starts = sorted((int(a), int(b)) for a, b in (p.split(":") for p in schedule.split(",")))
    for step in range(steps):
        size = [n for s, n in starts if s <= step][-1]
        per_rank = [gradients(m, *shard(x, y, step, rank, size)) for rank in range(size)]
        opt.apply([tf.add_n(list(g)) / size for g in zip(*per_rank)], m.trainable_variables)
    print("FINAL " + weights(m), flush=True)


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "train":
        train(int(args[0]), int(args[1]), int(args[2]), args[3] if len(args) > 3 else "")
    else:
        reference(int(args[0]), int(args[1]), args[2])
