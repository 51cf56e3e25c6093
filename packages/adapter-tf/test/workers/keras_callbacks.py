# The Keras callbacks on N ranks:
#   broadcast: every rank builds its model from its own seed (different weights); with
#              BroadcastGlobalVariablesCallback(0) one fit step must equal one plain step of rank
#              0's initial model on the global batch (so the broadcast came before the first
#              step), and all ranks end with the same weights (printed as a checksum); then
#              broadcast_variables inside a tf.function (Horovod's custom-loop pattern) and
#              broadcast_object
#   metrics:   each rank fits on its own data for 2 epochs; an early callback records this rank's
#              own epoch logs (OWN), History records what MetricAverageCallback made of them (HIST)
import sys

from keras_common import data, keras, loss_fn, make_model, np, rank_batches, rel_diff, tf

import unicc.tensorflow.keras as hvd

mode, seed, b = sys.argv[1], int(sys.argv[2]), 8
hvd.init()
r, n = hvd.rank(), hvd.size()

if mode == "broadcast":
    x, y = data(seed + 1, n * b)
    model = make_model(seed + 100 * r)
    model.compile(optimizer=hvd.DistributedOptimizer(keras.optimizers.Adam(0.01)), loss=loss_fn())
    model.fit(rank_batches(x, r, n, b), rank_batches(y, r, n, b), batch_size=b, shuffle=False, verbose=0,
              callbacks=[hvd.callbacks.BroadcastGlobalVariablesCallback(0)])
    ref = make_model(seed)  # rank 0's initial weights, made here without unicc
    ref.compile(optimizer=keras.optimizers.Adam(0.01), loss=loss_fn())
    ref.fit(x, y, batch_size=n * b, shuffle=False, verbose=0)
    print("DIFF broadcast-then-step %.3e" % rel_diff(model.get_weights(), ref.get_weights()), flush=True)
    weights = np.concatenate([w.ravel() for w in model.get_weights() + [v.numpy() for v in model.optimizer.variables]])
    print("CHECKSUM %s" % weights.astype(np.float64).sum().hex(), flush=True)
    v = [tf.Variable(np.full((3, 2), r + 0.5, np.float32)), tf.Variable(np.arange(4, dtype=np.int64) * (r + 1))]
    tf.function(lambda: hvd.broadcast_variables(v, root_rank=n - 1))()
    print("IN-FUNCTION %r %r" % (float(v[0].numpy()[2, 1]), v[1].numpy().tolist()), flush=True)
    print("OBJECT %r" % (hvd.broadcast_object({"from": r, "seed": seed}, root_rank=1),), flush=True)
    hvd.barrier()
else:
    x, y = data(seed + 1 + r, 4 * b)  # every rank its own data: its own loss
    own = []

    class Own(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            own.append(dict(logs))

    model = make_model(seed)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss_fn(), metrics=["accuracy"])
    history = model.fit(x, y, batch_size=b, epochs=2, shuffle=False, verbose=0,
                        callbacks=[Own(), hvd.callbacks.MetricAverageCallback()])
    for epoch in range(2):
        for key in ("loss", "accuracy"):
            print("OWN %d %s %r" % (epoch, key, own[epoch][key]), flush=True)
            print("HIST %d %s %r" % (epoch, key, history.history[key][epoch]), flush=True)
print("OK", mode, flush=True)
