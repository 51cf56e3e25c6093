"""The one-model classifier with Caffe through @unicc/caffe, each rank in the bullseye root; rank 0
saves the weights. Caffe has no maintained ONNX converter: eval_caffe.py scores them with pycaffe
on N ranks (unicc.caffe.evaluate) instead of unicc-eval.
    unicc run -np 4 --bridge -- packages/adapter-caffe/scripts/in-root.sh \\
        python3 examples/one-model/train_caffe.py --out caffe.caffemodel"""

import os
import time

os.environ.setdefault("GLOG_minloglevel", "1")
import caffe  # noqa: E402
import numpy as np  # noqa: E402

import unicc.caffe as uc  # noqa: E402
from caffe_net import images, net_file, solver_file  # noqa: E402
from common import BATCH, batches, parse, report, test_set, train_set  # noqa: E402

args = parse()
b = uc.init()
rank, size = b.rank, b.size
folder = os.path.dirname(os.path.abspath(args.out))
x, y = train_set()
x, y = images(x), y.astype(np.float32)
solver = uc.get_solver(solver_file(folder, BATCH // size))
t0 = time.perf_counter()
for epoch in range(args.epochs):
    idx = np.concatenate(list(batches(epoch, rank, size)))  # this rank's part of each step, in step order
    feed = (np.ascontiguousarray(x[idx]), np.ascontiguousarray(y[idx]))  # MemoryData keeps pointers: keep them alive
    solver.net.set_input_arrays(*feed)
    solver.step(len(idx) // (BATCH // size))
seconds = time.perf_counter() - t0
if rank == 0:
    xt, yt = test_set()
    own = caffe.Net(net_file(folder, len(xt)), caffe.TEST)
    own.share_with(solver.net)
    own.set_input_arrays(images(xt), yt.astype(np.float32))
    own.forward()
    report("caffe", seconds, args.epochs, size, own.blobs["logits"].data.argmax(axis=1))
    solver.net.save(args.out)
