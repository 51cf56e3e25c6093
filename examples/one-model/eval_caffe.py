"""Scores train_caffe.py's weights on the digits test set (unicc-eval's digits:test) with pycaffe on
N ranks, unicc.caffe.evaluate, as unicc-eval scores the ONNX exports (Caffe has no maintained ONNX
converter); rank 0 prints "one-model-eval: {json}" with unicc-eval's result fields run.sh reads.
    unicc run -np 4 --bridge -- packages/adapter-caffe/scripts/in-root.sh \\
        python3 examples/one-model/eval_caffe.py caffe.caffemodel"""

import json
import os
import sys
import time

os.environ.setdefault("GLOG_minloglevel", "1")
import caffe  # noqa: E402

import unicc.caffe as uc  # noqa: E402
from caffe_net import images, net_file  # noqa: E402
from common import test_set  # noqa: E402

weights = sys.argv[1]
b = uc.init()
x, y = test_set()
net = caffe.Net(net_file(os.path.dirname(os.path.abspath(weights)), 100), caffe.TEST, weights=weights)
t0 = time.perf_counter()
t = uc.evaluate(net, images(x), y, scores="logits", confusion=True)
seconds = time.perf_counter() - t0
if b.rank == 0:
    metrics = {"accuracy": t["accuracy"], "loss": t["loss"], "correct": t["correct"], "lossSum": t["loss_sum"],
               "confusion": t["confusion"].tolist()}
    print("one-model-eval: " + json.dumps({"scoredBy": "pycaffe", "size": b.size, "count": t["samples"], "seconds": seconds,
                                           "samplesPerSecond": t["samples"] / seconds, "metrics": metrics}), flush=True)
