"""Caffe's evaluation on N ranks (Caffe has no maintained ONNX converter, so the test set goes
through pycaffe itself): each rank forwards its own contiguous part of the rows through a
MemoryData net, the last batch padded by repeating its last row and the padding masked out; the
per-sample metrics are summed over the ranks with one allreduce each. Counts travel as i64, so they
are exact; the loss sum is f64 (the ranks' partial sums add in another order than one process's)."""

import numpy as np

from ._solver import init

# Caffe's SoftmaxWithLoss takes -log(max(p, FLT_MIN)) of float32 probabilities, so a sample's loss never
# exceeds this; without the cap one confidently wrong sample makes our sum differ from Caffe's.
_CAFFE_MAX_SAMPLE_LOSS = -float(np.log(np.finfo(np.float32).tiny))


def part(n, rank, size):
    """[start, stop) of rank's contiguous part of n rows; the first n % size ranks take one more."""
    q, r = divmod(n, size)
    start = rank * q + min(rank, r)
    return start, start + q + (rank < r)


def _batch_metrics(scores, labels, classes):
    """(correct, loss sum, confusion) of one batch's scores (rows x classes, before softmax)."""
    s = scores.astype(np.float64)
    s -= s.max(axis=1, keepdims=True)
    logp = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
    y = labels.astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= classes):
        raise ValueError("unicc.caffe: evaluate: labels must lie in [0, %d), got %d..%d" % (classes, y.min(), y.max()))
    guess = s.argmax(axis=1)
    confusion = np.zeros((classes, classes), np.int64)
    np.add.at(confusion, (y, guess), 1)
    losses = np.minimum(-logp[np.arange(len(y)), y], _CAFFE_MAX_SAMPLE_LOSS)
    return int((guess == y).sum()), float(losses.sum()), confusion


def _local(net, x, y, scores, classes):
    batch = net.blobs[scores].num  # rows per forward, as the MemoryData layer gives them
    correct, loss, confusion = 0, 0.0, np.zeros((classes, classes), np.int64)
    for at in range(0, len(x), batch):
        xb, yb = x[at:at + batch], y[at:at + batch]
        real = len(xb)
        if real < batch:  # pad with the last row; only the first `real` rows count
            xb = np.concatenate([xb, np.repeat(xb[-1:], batch - real, axis=0)])
            yb = np.concatenate([yb, np.repeat(yb[-1:], batch - real, axis=0)])
        net.set_input_arrays(np.ascontiguousarray(xb, np.float32), np.ascontiguousarray(yb, np.float32))
        net.forward()
        c, l, m = _batch_metrics(net.blobs[scores].data.reshape(batch, -1)[:real], yb[:real], classes)
        correct, loss, confusion = correct + c, loss + l, confusion + m
    return correct, loss, confusion


def evaluate(net, x, y, scores, confusion=False):
    """Evaluates net (TEST phase, MemoryData input, `scores` the blob before softmax) on the rows
    (x, y) of the whole test set, every rank passing the same arrays; returns the totals over all
    ranks: {"samples", "correct", "accuracy", "loss" (mean softmax cross-entropy, each sample's capped
    as Caffe's SoftmaxWithLoss caps it), "loss_sum", "confusion" (labels x guesses, int64, only with
    confusion=True)}."""
    b = init()
    x, y = np.asarray(x), np.asarray(y).reshape(-1)
    if len(x) != len(y):
        raise ValueError("unicc.caffe: evaluate on rank %d: %d rows of x but %d labels" % (b.rank, len(x), len(y)))
    if scores not in net.blobs:
        raise ValueError("unicc.caffe: evaluate on rank %d: no blob %r (blobs: %s)" % (b.rank, scores, ", ".join(net.blobs)))
    classes = net.blobs[scores].count // net.blobs[scores].num
    start, stop = part(len(x), b.rank, b.size)
    correct, loss, matrix = _local(net, x[start:stop], y[start:stop], scores, classes)
    counts = np.concatenate([[stop - start, correct], matrix.reshape(-1)]).astype(np.int64)
    counts = _sum(b, counts, "i64")
    loss = float(_sum(b, np.array([loss]), "f64")[0])
    n, correct = int(counts[0]), int(counts[1])
    out = {"samples": n, "correct": correct, "accuracy": correct / n if n else float("nan"),
           "loss_sum": loss, "loss": loss / n if n else float("nan")}
    if confusion:
        out["confusion"] = counts[2:].reshape(classes, classes)
    return out


def _sum(b, values, dtype):
    """values summed over the ranks (one allreduce through a shared-memory slab)."""
    slab = b.alloc(max(values.nbytes, 8))
    flat = np.frombuffer(slab.buffer, values.dtype, values.size)
    flat[...] = values
    b.submit("allreduce", slab, dtype, values.size, op="sum", name="unicc.caffe.evaluate/%s" % dtype).wait()
    out = flat.copy()
    b.release(slab)
    return out
