# Steps on N ranks with batch b each against the same steps of plain MXNet on one process with the
# whole batch N*b (computed here, without unicc). Every rank starts from different random weights
# (seed + rank): only the broadcast of rank 0's makes them equal to the reference's.
import sys

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from common import CLASSES, HIDDEN, data, net, report, weights

import unicc.mxnet as um

seed, b, steps = int(sys.argv[1]), 8, 2
um.init()
r, n = um.rank(), um.size()
X, Y = data(seed, n * b)
mine = slice(r * b, (r + 1) * b)
loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
OPT = {"learning_rate": 0.5, "momentum": 0.9}


def train(model, trainer, x, y, batch):
    for _ in range(steps):
        with autograd.record():
            loss = loss_fn(model(mx.nd.array(x)), mx.nd.array(y))
        loss.backward()
        trainer.step(batch)
    return weights(model)


ref = net(seed)
want = train(ref, gluon.Trainer(ref.collect_params(), "sgd", OPT, kvstore=None), X, Y, n * b)

for how in ("name", "instance"):
    m = net(seed + r)
    kv = "dist_sync_unicc" if how == "name" else um.UniccKVStore()
    t = gluon.Trainer(m.collect_params(), "sgd", OPT, kvstore=kv)
    # The Trainer broadcasts rank 0's weights from its first step(), as with MXNet's dist_sync; a
    # step before any backward does only that (no gradient is fresh, so nothing is updated).
    t.step(1, ignore_stale_grad=True)
    got = train(m, t, X[mine], Y[mine], n * b)
    assert type(t._kvstore).__name__ in ("Dist_sync_unicc", "UniccKVStore"), "Trainer dropped the kvstore: %r" % t._kvstore
    report("gluon.Trainer(kvstore=%s)" % ("'dist_sync_unicc'" if how == "name" else "UniccKVStore()"), got, want, 1e-5)

m = net(seed + r)
um.broadcast_parameters(m.collect_params(), root_rank=0)
got = train(m, um.DistributedTrainer(m.collect_params(), "sgd", OPT), X[mine], Y[mine], b)
report("DistributedTrainer", got, want, 1e-5)


# The Module API: one batch through mod.fit, from rank 0's parameters (Horovod's recipe: broadcast
# get_params(), then set_params()).
def module(x, y, batch, kvstore, init_seed):
    s = mx.sym.Variable("data")
    s = mx.sym.Activation(mx.sym.FullyConnected(s, num_hidden=HIDDEN, name="fc1"), act_type="tanh")
    s = mx.sym.SoftmaxOutput(mx.sym.FullyConnected(s, num_hidden=CLASSES, name="fc2"), name="softmax")
    mod = mx.mod.Module(s, context=mx.cpu())
    mod.bind(data_shapes=[("data", (batch, x.shape[1]))], label_shapes=[("softmax_label", (batch,))])
    mx.random.seed(init_seed)
    mod.init_params(mx.init.Uniform(0.5))
    if kvstore is not None:
        args, aux = mod.get_params()
        um.broadcast_parameters(args, root_rank=0)
        mod.set_params(args, aux)
    it = mx.io.NDArrayIter(x, y, batch_size=batch, label_name="softmax_label")
    mod.fit(it, num_epoch=1, kvstore=kvstore, optimizer="sgd", optimizer_params=OPT)
    return [v.asnumpy() for _, v in sorted(mod.get_params()[0].items())]


want = module(X, Y, n * b, None, seed)
report("Module.fit(kvstore='dist_sync_unicc')", module(X[mine], Y[mine], b, "dist_sync_unicc", seed + r), want, 1e-5)

# The store itself: init (rank 0's values), push/pull and pushpull with int and str keys and lists.
kv = mx.kv.create("dist_sync_unicc")
assert (kv.type, kv.rank, kv.num_workers) == ("dist_sync_unicc", r, n), (kv.type, kv.rank, kv.num_workers)
shapes = {3: (4, 5), "w": (7,)}


def value(key, rank):
    return np.random.RandomState(seed + 100 * rank + len(str(key))).randn(*shapes[key]).astype(np.float32)


keys = list(shapes)
vals = [mx.nd.array(value(k, r)) for k in keys]
kv.init(keys, vals)
report("kv.init([3, 'w']) takes rank 0's values", [v.asnumpy() for v in vals], [value(k, 0) for k in keys], 0)
outs = [mx.nd.zeros(shapes[k]) for k in keys]
kv.pull(keys, out=outs)
report("kv.pull after init", [o.asnumpy() for o in outs], [value(k, 0) for k in keys], 0)
total = [sum(value(k, q) for q in range(n)) for k in keys]
kv.push(keys, [mx.nd.array(value(k, r)) for k in keys])
kv.pull(keys, out=outs)
report("kv.push + kv.pull sum across workers", [o.asnumpy() for o in outs], total, 1e-6)
kv.pull(3, out=outs[0])
report("kv.pull again (the stored sum)", [outs[0].asnumpy()], total[:1], 1e-6)
kv.pushpull("w", mx.nd.array(value("w", r)), out=outs[1])
report("kv.pushpull('w', out=...)", [outs[1].asnumpy()], total[1:], 1e-6)
print("OK equivalence rank %d of %d" % (r, n), flush=True)
