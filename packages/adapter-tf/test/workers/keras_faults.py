# A killed rank: every rank trains with model.fit and DistributedOptimizer; rank V kills itself
# (SIGKILL) at the start of epoch 3, and every other rank's fit must raise naming rank V.
import os
import signal
import sys
import time

from keras_common import data, keras, loss_fn, make_model

import unicc.tensorflow.keras as hvd

victim = int(sys.argv[1])
# The launcher stops everybody once the victim dies; outlive its SIGTERM so that what unicc itself
# reports can be checked (its SIGKILL after the grace period still ends us).
signal.signal(signal.SIGTERM, lambda *_: print("SIGTERM ignored", flush=True))
hvd.init()
r = hvd.rank()


def ms():
    return int(time.time() * 1000)


class Die(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 2 and r == victim:
            time.sleep(0.5)  # the others are waiting in the exchange by now
            print("DYING %d" % ms(), flush=True)
            os.kill(os.getpid(), signal.SIGKILL)


x, y = data(1, 64)
model = make_model(1)
model.compile(optimizer=hvd.DistributedOptimizer(keras.optimizers.SGD(0.1)), loss=loss_fn())
try:
    model.fit(x, y, batch_size=8, epochs=1000, verbose=0, callbacks=[Die()])
except Exception as e:  # inside fit's tf.function the UniccError reaches us as a TensorFlow error
    print("ERROR %d %s: %s" % (ms(), type(e).__name__, str(e).replace("\n", " ")), flush=True)
    sys.exit(3)
