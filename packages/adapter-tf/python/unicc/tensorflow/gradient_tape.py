"""DistributedGradientTape: a tf.GradientTape whose gradient() returns the gradients averaged over
the ranks, as Horovod's does. The gradients of one call go to the engine together, named by their
position, so the engine fuses them into as few transfers as fit."""

import tensorflow as tf

from ._ops import Average, check_op, grouped_allreduce


def average_gradients(grads, prefix, op=Average, compression=None):
    """The gradients (a list, None where a variable has none) reduced across ranks; named
    `<prefix>.<position>`, so every rank must pass the same list. None stays None (the same
    variables lack a gradient on every rank running the same model)."""
    present = [i for i, g in enumerate(grads) if g is not None]
    reduced = grouped_allreduce([grads[i] for i in present], op=op, compression=compression,
                                names=["%s.%d" % (prefix, i) for i in present])
    out = list(grads)
    for i, g in zip(present, reduced):
        out[i] = g
    return out


def _call_prefix(kind):
    """A name for this call site: unique within the graph being traced (so two calls in one
    tf.function never share names), fixed in eager code (calls there run one after the other)."""
    if tf.executing_eagerly():
        return "unicc.%s" % kind
    return tf.compat.v1.get_default_graph().unique_name("unicc.%s" % kind, mark_as_used=True)


class _DistributedGradientTape:
    def gradient(self, target, sources, output_gradients=None, unconnected_gradients=tf.UnconnectedGradients.NONE):
        grads = super().gradient(target, sources, output_gradients, unconnected_gradients)
        flat = tf.nest.flatten(grads, expand_composites=False)
        flat = average_gradients(flat, _call_prefix("tape"), self._unicc_op, self._unicc_compression)
        return tf.nest.pack_sequence_as(grads, flat)


def DistributedGradientTape(gradtape, compression=None, op=Average, device_dense="", device_sparse="",
                            sparse_as_dense=True):
    """Wraps a tf.GradientTape after its `with` block (Horovod's signature; the device arguments
    are accepted for porting: unicc stages tensors in host memory, and sparse gradients always
    travel dense). `compression`: Compression.fp16 or .bf16 between hosts."""
    del device_dense, device_sparse, sparse_as_dense
    if not isinstance(gradtape, tf.GradientTape):
        raise TypeError("unicc.tensorflow.DistributedGradientTape wraps a tf.GradientTape, got %r" % type(gradtape))
    cls = type(gradtape.__class__.__name__, (_DistributedGradientTape, gradtape.__class__), {})
    tape = cls.__new__(cls)
    tape.__dict__.update(gradtape.__dict__)
    tape._unicc_op = check_op(op)
    tape._unicc_compression = compression
    return tape
