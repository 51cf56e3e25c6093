"""The one-model classifier with Keras 3 (TensorFlow) through unicc.tensorflow.keras; rank 0
exports it with Keras's own ONNX export.
    unicc run -np 4 <keras venv>/bin/python examples/one-model/train_keras.py --out keras.onnx"""

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import unicc.tensorflow.keras as hvd  # noqa: E402
from common import BATCH, HIDDEN, LR, batches, parse, report, test_set, train_set  # noqa: E402

args = parse()
hvd.init()
rank, size = hvd.rank(), hvd.size()
tf.config.threading.set_intra_op_parallelism_threads(max(1, (os.cpu_count() or 1) // hvd.local_size()))
tf.config.threading.set_inter_op_parallelism_threads(1)
import keras  # noqa: E402

x, y = train_set()
keras.utils.set_random_seed(1)
model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(HIDDEN, activation="relu"), keras.layers.Dense(10)])
model.compile(optimizer=hvd.DistributedOptimizer(keras.optimizers.Adam(LR)),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
broadcast = hvd.callbacks.BroadcastGlobalVariablesCallback(0)
seconds = 0.0
for epoch in range(args.epochs):
    mine = np.concatenate(list(batches(epoch, rank, size)))
    t0 = time.perf_counter()
    model.fit(x[mine], y[mine], batch_size=BATCH // size, epochs=1, shuffle=False, verbose=0, callbacks=[broadcast])
    seconds += time.perf_counter() - t0
if rank == 0:
    report("keras", seconds, args.epochs, size, np.argmax(model.predict(test_set()[0], batch_size=500, verbose=0), 1))
    model.export(args.out, format="onnx", verbose=False)
hvd.allreduce(tf.zeros(1))  # the others wait for the export
