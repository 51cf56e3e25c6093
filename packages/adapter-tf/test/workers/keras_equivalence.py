# Two steps on N ranks with batch b each against two steps of plain Keras on one process with the
# global batch N*b (computed here, without unicc), from the same initial weights:
#   fit:  model.fit with hvd.DistributedOptimizer(Adam); fit-fp16 the same with Compression.fp16
#   tape: a custom loop with hvd.DistributedGradientTape and SGD with momentum, step 1 eager,
#         step 2 inside a tf.function
#   copies: inside a tf.function, the exchange reads the gradients' own buffers and its output
#         tensors are the arrays it copied the results into (one copy each way)
import sys

from keras_common import data, keras, loss_fn, make_model, np, rank_batches, rel_diff, tf

import unicc.tensorflow as htf
import unicc.tensorflow.keras as hvd

mode, seed, b, steps = sys.argv[1], int(sys.argv[2]), 8, 2
hvd.init()
r, n = hvd.rank(), hvd.size()
x, y = data(seed + 1, steps * n * b)


def report(what, model, reference):
    d = rel_diff(model.get_weights(), reference.get_weights())
    print("DIFF %s %.3e" % (what, d), flush=True)


def tape_steps(model, opt, xs, ys, wrap):
    def step(xb, yb):
        with tf.GradientTape() as tape:
            loss = loss_fn()(yb, model(xb, training=True))
        tape = wrap(tape)
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))

    step(xs[0], ys[0])
    tf.function(step)(xs[1], ys[1])


if mode in ("fit", "fit-fp16"):
    model, ref = make_model(seed), make_model(seed)
    compression = hvd.Compression.fp16 if mode == "fit-fp16" else None
    model.compile(optimizer=hvd.DistributedOptimizer(keras.optimizers.Adam(0.01), compression=compression), loss=loss_fn())
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    model.fit(rank_batches(x, r, n, b), rank_batches(y, r, n, b), batch_size=b, shuffle=False, verbose=0)
    ref.compile(optimizer=keras.optimizers.Adam(0.01), loss=loss_fn())
    ref.fit(x, y, batch_size=n * b, shuffle=False, verbose=0)
    report("fit+DistributedOptimizer(Adam%s)" % (", fp16" if compression else ""), model, ref)
elif mode == "copies":
    from unicc.tensorflow import _ops

    seen = {"in": [], "out": []}
    exchange, aligned = _ops._exchange, _ops._aligned
    _ops._exchange = lambda arrays, *a: seen["in"].extend(x.ctypes.data for x in arrays) or exchange(arrays, *a)
    _ops._aligned = lambda *a: (lambda out: seen["out"].append(out.ctypes.data) or out)(aligned(*a))
    grads = [tf.constant(np.full(shape, r + 1.0, np.float32)) for shape in [(300, 40), (40,), (7, 3)]]
    outs = tf.function(lambda gs: htf.grouped_allreduce(gs, names=["copies.%d" % i for i in range(3)]))(grads)
    assert all(float(o.numpy().ravel()[0]) == (n + 1) / 2 for o in outs), [o.numpy().ravel()[0] for o in outs]
    print("IN-SHARED %s" % ([np.asarray(g).ctypes.data for g in grads] == seen["in"]), flush=True)
    print("OUT-ADOPTED %s" % ([np.asarray(o).ctypes.data for o in outs] == seen["out"]), flush=True)
else:
    model, ref = make_model(seed), make_model(seed)
    mine = [tf.constant(v) for v in np.split(rank_batches(x, r, n, b), steps)]
    mine_y = [tf.constant(v) for v in np.split(rank_batches(y, r, n, b), steps)]
    tape_steps(model, keras.optimizers.SGD(0.5, momentum=0.9), mine, mine_y, htf.DistributedGradientTape)
    whole = [tf.constant(v) for v in np.split(x, steps)]
    whole_y = [tf.constant(v) for v in np.split(y, steps)]
    tape_steps(ref, keras.optimizers.SGD(0.5, momentum=0.9), whole, whole_y, lambda t: t)
    report("DistributedGradientTape (eager, then tf.function)", model, ref)
print("OK", mode, flush=True)
