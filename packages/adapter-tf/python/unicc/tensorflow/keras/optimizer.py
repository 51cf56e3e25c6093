"""DistributedOptimizer for Keras 3: the wrapped optimizer's apply() (what model.fit's train step
and apply_gradients call) first replaces the gradients by their average over the ranks. All the
gradients of a step go to the engine in one call, named `unicc.opt<k>.<position>` (k counts the
optimizers this process wrapped, so optimizers made in the same order on every rank match), and
the engine fuses them."""

import itertools

import keras

from .._ops import Average, check_op
from ..gradient_tape import average_gradients

_count = itertools.count()


class _DistributedOptimizer:
    """Mixed in front of the optimizer's own class, so Keras still sees an Adam (or SGD, ...):
    compile accepts it, and saving writes the inner class and config."""

    def apply(self, grads, trainable_variables=None):
        grads = average_gradients(list(grads), self._unicc_prefix, self._unicc_op, self._unicc_compression)
        return super().apply(grads, trainable_variables)


def DistributedOptimizer(optimizer, name=None, compression=None, op=Average, device_dense="", device_sparse="",
                         sparse_as_dense=True):
    """A new optimizer of `optimizer`'s class and config (its state too, if it has been built) whose
    updates use the gradients averaged over the ranks. Horovod's signature; the device arguments
    are accepted for porting (tensors are staged in host memory, sparse gradients travel dense).
    `compression`: Compression.fp16 or .bf16 between hosts (default UNICC_COMPRESSION)."""
    del device_dense, device_sparse, sparse_as_dense
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        raise TypeError("unicc.tensorflow.keras.DistributedOptimizer wraps a keras.optimizers.Optimizer, got %r"
                        % type(optimizer))
    base = optimizer.__class__
    cls = type(base.__name__, (_DistributedOptimizer, base), {"__module__": base.__module__})
    config = optimizer.get_config()
    if name is not None:
        config["name"] = name
    wrapped = cls.from_config(config)
    wrapped._unicc_prefix = "unicc.opt%d" % next(_count)
    wrapped._unicc_op = check_op(op)
    wrapped._unicc_compression = compression
    if optimizer.built:  # carry the state over (a loaded model's optimizer, or one already used)
        wrapped.build(optimizer._trainable_variables)
        for mine, theirs in zip(wrapped.variables, optimizer.variables):
            mine.assign(theirs)
    return wrapped
