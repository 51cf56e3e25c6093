"""Horovod's Keras callbacks, for Keras 3."""

import numpy as np
import tensorflow as tf

import keras

from .. import broadcast_variables, grouped_allreduce, size


class BroadcastGlobalVariablesCallback(keras.callbacks.Callback):
    """Makes every rank start from rank root_rank's weights and optimizer state. Unlike Horovod's,
    which broadcasts after the first batch (so that first step starts from different weights on
    every rank), this broadcasts in on_train_begin: fit builds the model and its optimizer before
    it, so the first step already runs on the same values everywhere."""

    def __init__(self, root_rank=0, device=""):
        super().__init__()
        del device  # Horovod's; unicc stages in host memory
        self.root_rank = root_rank
        self.broadcast_done = False

    def on_train_begin(self, logs=None):
        if self.broadcast_done:
            return
        variables = list(self.model.variables)
        if self.model.optimizer is not None:
            if not self.model.optimizer.built:
                self.model.optimizer.build(self.model.trainable_variables)
            variables += list(self.model.optimizer.variables)
        broadcast_variables(variables, self.root_rank)
        self.broadcast_done = True


class MetricAverageCallback(keras.callbacks.Callback):
    """Replaces every number in an epoch's logs (loss, metrics, val_*) by its average over the
    ranks, in place: History, the progress bar and callbacks after this one see the averages.
    One allreduce per epoch, keys in sorted order (every rank must log the same keys)."""

    def __init__(self, device=""):
        super().__init__()
        del device

    def on_epoch_end(self, epoch, logs=None):
        if not logs or size() == 1:
            return
        keys = sorted(k for k, v in logs.items() if isinstance(v, (int, float, np.floating, np.integer)))
        values = tf.constant([float(logs[k]) for k in keys], tf.float64)
        averaged = grouped_allreduce([values])[0].numpy()
        for k, v in zip(keys, averaged):
            logs[k] = float(v)
