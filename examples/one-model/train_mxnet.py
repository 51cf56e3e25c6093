"""The one-model classifier with MXNet gluon through @unicc/mxnet (kvstore dist_sync_unicc); rank 0
exports it to ONNX.  unicc run -np 4 <mxnet venv>/bin/python examples/one-model/train_mxnet.py --out mxnet.onnx"""

import os
import time

os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // int(os.environ.get("UNICC_LOCAL_SIZE", "1")))))

import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402
from mxnet import autograd, gluon  # noqa: E402

import unicc.mxnet as um  # noqa: E402
from common import BATCH, HIDDEN, LR, batches, parse, report, test_set, train_set  # noqa: E402
from unicc.mxnet.onnx import export_onnx  # noqa: E402

args = parse()
um.init()
rank, size = um.rank(), um.size()
x, y = train_set()
y = y.astype(np.float32)
mx.random.seed(1)
net = gluon.nn.HybridSequential()
net.add(gluon.nn.Dense(HIDDEN, in_units=784, activation="relu"), gluon.nn.Dense(10, in_units=HIDDEN))
net.initialize(mx.init.Xavier())
net.hybridize()
um.broadcast_parameters(net.collect_params(), root_rank=0)
trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": LR}, kvstore="dist_sync_unicc")
loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
t0 = time.perf_counter()
for epoch in range(args.epochs):
    for idx in batches(epoch, rank, size):
        with autograd.record():
            loss = loss_fn(net(mx.nd.array(x[idx])), mx.nd.array(y[idx]))
        loss.backward()
        trainer.step(BATCH)  # dist_sync sums the ranks' gradients: normalise by the global batch
mx.nd.waitall()
seconds = time.perf_counter() - t0
if rank == 0:
    report("mxnet", seconds, args.epochs, size, net(mx.nd.array(test_set()[0])).argmax(axis=1).asnumpy())
    export_onnx(net, (784,), args.out)
um.allreduce(mx.nd.zeros(1))  # the others wait for the export
