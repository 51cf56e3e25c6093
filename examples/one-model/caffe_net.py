"""The one-model classifier as a Caffe net (784-128-10, Xavier weights, zero biases), fed by a
MemoryData layer, and its Adam solver; shared by train_caffe.py and eval_caffe.py."""

import os

from common import HIDDEN, LR

NET = """name: "one-model"
layer { name: "data" type: "MemoryData" top: "data" top: "label"
  memory_data_param { batch_size: %(batch)d channels: 1 height: 1 width: 784 } }
layer { name: "hidden" type: "InnerProduct" bottom: "data" top: "hidden"
  inner_product_param { num_output: %(hidden)d weight_filler { type: "xavier" } bias_filler { type: "constant" value: 0 } } }
layer { name: "relu" type: "ReLU" bottom: "hidden" top: "hidden" }
layer { name: "logits" type: "InnerProduct" bottom: "hidden" top: "logits"
  inner_product_param { num_output: 10 weight_filler { type: "xavier" } bias_filler { type: "constant" value: 0 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "logits" bottom: "label" top: "loss" }
"""

SOLVER = """net: "%(net)s"
type: "Adam"
base_lr: %(lr)g
momentum: 0.9
momentum2: 0.999
delta: 1e-8
lr_policy: "fixed"
max_iter: 100000000
display: 0
snapshot_after_train: false
random_seed: 1
solver_mode: CPU
"""


def _write(path, text):
    """Every rank writes the same file: whole (a rename), so none reads half of one."""
    tmp = "%s.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return path


def net_file(folder, batch):
    """The net with `batch` rows per forward, written into folder; its path."""
    return _write(os.path.join(folder, "caffe-net-%d.prototxt" % batch), NET % {"batch": batch, "hidden": HIDDEN})


def solver_file(folder, batch):
    return _write(os.path.join(folder, "caffe-solver-%d.prototxt" % batch), SOLVER % {"net": net_file(folder, batch), "lr": LR})


def images(x):
    """Rows of 784 pixels as MemoryData takes them: N x 1 x 1 x 784 float32."""
    return x.reshape(-1, 1, 1, 784).astype("float32")
