# ShardedSoftmaxClassifier on N ranks against one process's full fully connected layer plus
# softmax cross-entropy on the whole global batch (computed here with plain MXNet):
#   1. loss, embedding gradients and the gathered class-weight gradients, with ordinary logits
#      and with logits in the hundreds (a softmax without its max subtracted overflows there);
#   2. one DistributedTrainer step of a data-parallel body + the sharded classifier.
import sys

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from common import report

import unicc.mxnet as um

seed, b, D, C = int(sys.argv[1]), 6, 16, 100
um.init()
r, n = um.rank(), um.size()
rng = np.random.RandomState(seed)
W = rng.randn(C, D).astype(np.float32)
X = rng.randn(n * b, D).astype(np.float32)
Y = rng.randint(0, C, n * b).astype(np.float32)
G = rng.rand(n * b).astype(np.float32)  # head gradient per sample: the loss is weighted by it
mine = slice(r * b, (r + 1) * b)
ce = gluon.loss.SoftmaxCrossEntropyLoss()


def full(x, w):
    x, w = mx.nd.array(x), mx.nd.array(w)
    x.attach_grad()
    w.attach_grad()
    with autograd.record():
        loss = ce(mx.nd.dot(x, w, transpose_b=True), mx.nd.array(Y))
    loss.backward(mx.nd.array(G))
    return loss.asnumpy(), x.grad.asnumpy(), w.grad.asnumpy()


for scale in (1.0, 30.0):
    want_loss, want_dx, want_dw = full(X * scale, W)
    clf = um.ShardedSoftmaxClassifier(C, D)
    clf.initialize()
    assert clf.weight.shape == (C // n, D), clf.weight.shape
    clf.weight.set_data(mx.nd.array(W[clf.start:clf.end]))
    x = mx.nd.array(X[mine] * scale)
    x.attach_grad()
    with autograd.record():
        loss = clf(x, mx.nd.array(Y[mine]))
    loss.backward(mx.nd.array(G[mine]))
    dw = um.allgather(clf.weight.grad())
    what = "logits x%g" % scale
    report("%s loss" % what, [loss.asnumpy()], [want_loss[mine]], 1e-5)
    report("%s embedding grad" % what, [x.grad.asnumpy()], [want_dx[mine]], 1e-5)
    report("%s gathered class-weight grad" % what, [dw.asnumpy()], [want_dw], 1e-5)

# The classifier alone under DistributedTrainer: its update is queued before MXNet runs backward
# (asynchronously, on its custom-function thread), which must not then wait for that update.
want_dx_w = full(X, W)[2]
clf = um.ShardedSoftmaxClassifier(C, D)
clf.initialize()
clf.weight.set_data(mx.nd.array(W[clf.start:clf.end]))
t = um.DistributedTrainer(clf.collect_params(), "sgd", {"learning_rate": 0.3})
with autograd.record():
    loss = clf(mx.nd.array(X[mine]), mx.nd.array(Y[mine]))
loss.backward(mx.nd.array(G[mine]))
t.step(b)
mx.nd.waitall()
report("DistributedTrainer step: the classifier alone", [clf.weight.data().asnumpy()],
       [W[clf.start:clf.end] - 0.3 * want_dx_w[clf.start:clf.end] / (n * b)], 1e-5)

# A training step: body Dense(D) data parallel, classifier sharded, against the same in one process.
H, LR = 12, 0.3
Z = rng.randn(n * b, H).astype(np.float32)
B0 = rng.randn(D, H).astype(np.float32) * 0.3


def body():
    d = gluon.nn.Dense(D, in_units=H, use_bias=False, activation="tanh")
    d.initialize()
    d.weight.set_data(mx.nd.array(B0))
    return d


ref_body, ref_w = body(), gluon.Parameter("w", shape=(C, D))
ref_w.initialize()
ref_w.set_data(mx.nd.array(W))
params = ref_body.collect_params()
params._params["w"] = ref_w
with autograd.record():
    loss = ce(mx.nd.dot(ref_body(mx.nd.array(Z)), ref_w.data(), transpose_b=True), mx.nd.array(Y))
loss.backward()
gluon.Trainer(params, "sgd", {"learning_rate": LR}, kvstore=None).step(n * b)

dp, clf = body(), um.ShardedSoftmaxClassifier(C, D)
clf.initialize()
clf.weight.set_data(mx.nd.array(W[clf.start:clf.end]))
both = dp.collect_params()
both.update(clf.collect_params())
t = um.DistributedTrainer(both, "sgd", {"learning_rate": LR})
with autograd.record():
    loss = clf(dp(mx.nd.array(Z[mine])), mx.nd.array(Y[mine]))
loss.backward()
t.step(b)
report("DistributedTrainer step: data-parallel body", [dp.weight.data().asnumpy()], [ref_body.weight.data().asnumpy()], 1e-5)
report("DistributedTrainer step: this rank's class weights", [clf.weight.data().asnumpy()],
       [ref_w.data().asnumpy()[clf.start:clf.end]], 1e-5)
print("OK sharded rank %d of %d" % (r, n), flush=True)
