"""Small nets and solver files the workers write into their job's folder (random inputs come from the test's seed)."""

import os

import numpy as np

MLP = """name: "mlp"
layer { name: "data" type: "MemoryData" top: "data" top: "label"
  memory_data_param { batch_size: %(batch)d channels: 1 height: 1 width: %(dim)d } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
  inner_product_param { num_output: %(hidden)d weight_filler { type: "xavier" } bias_filler { type: "constant" value: 0.1 } } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
  param { name: "shared_w" } param { name: "shared_b" }
  inner_product_param { num_output: %(hidden)d weight_filler { type: "xavier" } } }
layer { name: "relu2" type: "ReLU" bottom: "ip2" top: "ip2" }
layer { name: "ip3" type: "InnerProduct" bottom: "ip2" top: "ip3"
  param { name: "shared_w" } param { name: "shared_b" }
  inner_product_param { num_output: %(hidden)d weight_filler { type: "xavier" } } }
layer { name: "relu3" type: "ReLU" bottom: "ip3" top: "ip3" }
layer { name: "ip4" type: "InnerProduct" bottom: "ip3" top: "ip4"
  inner_product_param { num_output: %(classes)d weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip4" bottom: "label" top: "loss" }
"""

SOLVERS = {
    "sgd": 'type: "SGD" base_lr: 0.1 momentum: 0.9 weight_decay: 0.001',
    "nesterov": 'type: "Nesterov" base_lr: 0.05 momentum: 0.9',
    "adam": 'type: "Adam" base_lr: 0.01 momentum: 0.9 momentum2: 0.999 delta: 1e-8',
}

DIM, CLASSES = 20, 5


DATA_LAYERS = {
    "db": 'layer { name: "data" type: "Data" top: "data" top: "label"\n  data_param { source: "%s" backend: LMDB batch_size: %d } }\n',
    # "index" (each row's number in the data set) lets a test see which rows a rank read.
    "hdf5": 'layer { name: "data" type: "HDF5Data" top: "data" top: "label" top: "index"\n'
            '  hdf5_data_param { source: "%s" batch_size: %d } }\n',
}


def data_net(net_text, kind, source, batch):
    """The net with its MemoryData layer replaced by a Data layer reading the LMDB source (kind "db",
    float data as make_lmdb.py writes) or an HDF5Data layer reading the list file source ("hdf5")."""
    head, rest = net_text.split("\n", 1)
    body = rest.split("\n", 2)[2]  # drop the two lines of the MemoryData layer
    return head + "\n" + DATA_LAYERS[kind] % (source, batch) + body


def write(path, text):
    """Every rank writes the same files into the job's folder: whole, so none reads half of one."""
    tmp = "%s.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return path


def write_solver(folder, kind, batch, max_iter=1000, extra="", db=None, snapshot_after_train=False, hdf5=None, hidden=16,
                 policy='lr_policy: "fixed"', activation="ReLU"):
    """A solver file for the MLP with `batch` rows per iteration (from MemoryData, the LMDB db, or the
    HDF5 list file hdf5), `hidden` units per hidden layer, the learning rate `policy` and the hidden
    layers' `activation` (a Caffe layer type); returns its path."""
    tag = "%s-%d-%d%s-%s" % (kind, batch, hidden, "-db" if db else "-hdf5" if hdf5 else "", activation)
    text = (MLP % {"batch": batch, "dim": DIM, "classes": CLASSES, "hidden": hidden}).replace('type: "ReLU"', 'type: "%s"' % activation)
    if db or hdf5:
        text = data_net(text, "db" if db else "hdf5", db or hdf5, batch)
    net = write(os.path.join(folder, "mlp-%s.prototxt" % tag), text)
    return write(os.path.join(folder, "solver-%s.prototxt" % tag),
                 'net: "%s"\n%s\n%s\nmax_iter: %d\ndisplay: 0\nsnapshot_after_train: %s\nrandom_seed: 7\n%s\n'
                 % (net, SOLVERS[kind], policy, max_iter, str(snapshot_after_train).lower(), extra))


def dataset(seed, rows):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, 1, 1, DIM)).astype(np.float32)
    y = rng.integers(0, CLASSES, rows).astype(np.float32)
    return x, y


def weights(net):
    """Every parameter blob's values, by layer, as float64 copies."""
    return {"%s#%d" % (k, j): b.data.astype(np.float64).copy() for k, v in net.params.items() for j, b in enumerate(v)}


def rel_err(a, b):
    """The largest difference of a from b, relative to b's largest value, over all blobs."""
    return max(float(np.abs(a[k] - b[k]).max()) for k in b) / max(max(float(np.abs(b[k]).max()) for k in b), 1e-12)
