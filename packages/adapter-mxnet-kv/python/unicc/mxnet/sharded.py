"""Hybrid data/model parallelism for classifiers too large for one rank (face recognition's
millions of identities): the last fully connected layer's classes are split across ranks.

Forward: every rank's embeddings (and labels) are allgathered; each rank computes the logits of
its own classes for the whole global batch; the softmax's max and sum of exponentials (and the
true class's logit) are allreduced, so the loss is exact and numerically stable; each rank gets the
loss of its own samples. Backward: each rank's class-weight gradient comes from the global batch
and stays local (it is never allreduced); the embeddings' gradient is summed over the ranks'
classes and each rank keeps its own samples' rows. The rest of the network stays data parallel.
"""

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from . import _ops


def _allreduce(a, op):
    return _ops.start_allreduce(a, [a], op=op).wait()[0]


def _allgather(a):
    return _ops.start_allgather(a).wait()[0]


def class_range(num_classes, rank, size):
    """[start, end) of the classes rank holds: an even split, the first ranks taking one more."""
    base, extra = divmod(num_classes, size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


class _ShardedSoftmaxCE(autograd.Function):
    def __init__(self, start, end, rank, size):
        super().__init__()
        self._start, self._end, self._rank, self._size = start, end, rank, size

    # w first: MXNet 1.9's Function.backward stops writing gradients at the first input that needs
    # none (embeddings without a gradient, the labels), so those must come after it.
    def forward(self, w, x, label):
        b = x.shape[0]
        xs = _allgather(x)                                   # (size*b, D)
        ys = _allgather(label.astype(np.float32)) - self._start
        logits = mx.nd.dot(xs, w, transpose_b=True)          # (size*b, my classes)
        top = _allreduce(logits.max(axis=1), "max")
        e = mx.nd.exp(logits - top.expand_dims(1))
        total = _allreduce(e.sum(axis=1), "sum")
        mine = (ys >= 0) * (ys < self._end - self._start)
        onehot = mx.nd.one_hot(ys * mine, self._end - self._start) * mine.expand_dims(1)
        true_logit = _allreduce((logits * onehot).sum(axis=1), "sum")
        loss = mx.nd.log(total) + top - true_logit           # -log softmax(true class), global batch
        # backward runs later, on MXNet's custom-function thread, after the optimizer's update of w
        # may already be queued: an op reading w from there would wait for that update, which waits
        # for backward. So backward reads a snapshot taken now (one shard-sized copy per step).
        self.save_for_backward(xs, w.copy(), e / total.expand_dims(1), onehot)
        own = slice(self._rank * b, (self._rank + 1) * b)
        return loss[own]

    def backward(self, dloss):
        xs, w, prob, onehot = self.saved_tensors
        b = dloss.shape[0]
        dlogits = (prob - onehot) * _allgather(dloss).expand_dims(1)
        dw = mx.nd.dot(dlogits, xs, transpose_a=True)        # local: these classes' weights only
        dxs = _allreduce(mx.nd.dot(dlogits, w), "sum")       # summed over every rank's classes
        return dw, dxs[self._rank * b:(self._rank + 1) * b], mx.nd.zeros_like(dloss)


class ShardedSoftmaxClassifier(gluon.Block):
    """A fully connected layer (no bias) over `num_classes` plus softmax cross-entropy, its classes
    split across ranks: `weight` holds this rank's (class_range(...)) rows. Call with this rank's
    embeddings (batch, embedding_dim) and labels (batch,); returns the loss of each of its samples.

    Its weight's gradient is already that of the global batch and must not be summed across ranks:
    DistributedTrainer leaves it local (it marks params with `unicc_local`); with a gluon.Trainer on
    dist_sync_unicc, give this block's parameters to a second Trainer with kvstore=None."""

    def __init__(self, num_classes, embedding_dim, weight_initializer=None, **kwargs):
        super().__init__(**kwargs)
        rank, size = _ops.bridge().rank, _ops.bridge().size
        self.num_classes, self.embedding_dim = num_classes, embedding_dim
        self.start, self.end = class_range(num_classes, rank, size)
        self._rank, self._size = rank, size
        with self.name_scope():
            self.weight = self.params.get("weight", shape=(self.end - self.start, embedding_dim), init=weight_initializer)
        self.weight.unicc_local = True

    def forward(self, x, label):
        if x.ndim != 2 or x.shape[1] != self.embedding_dim:
            raise ValueError("unicc.mxnet.ShardedSoftmaxClassifier: rank %d: embeddings of shape %s, expected (batch, %d)"
                             % (self._rank, x.shape, self.embedding_dim))
        return _ShardedSoftmaxCE(self.start, self.end, self._rank, self._size)(self.weight.data(x.context), x, label)
