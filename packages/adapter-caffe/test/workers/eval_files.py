"""Files for `unicc-caffe test` (usage: eval_files.py SEED FOLDER ROWS): the MLP of nets.py with batch 4
(eval-net.prototxt), random weights (eval.caffemodel), ROWS random rows and labels (eval-x.npy with
samples flat, eval-y.npy int64), and on stdout "REF <samples> <correct> <mean loss>" of one plain
pycaffe forward over all rows."""

import os
import sys

os.environ.setdefault("GLOG_minloglevel", "2")
import caffe  # noqa: E402
import numpy as np  # noqa: E402

from nets import CLASSES, DIM, MLP, dataset, write  # noqa: E402

seed, folder, rows = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
x, y = dataset(seed, rows)
ref = caffe.Net(write(os.path.join(folder, "eval-ref.prototxt"), MLP % {"batch": rows, "dim": DIM, "classes": CLASSES, "hidden": 16}), caffe.TEST)
rng = np.random.default_rng(seed + 1)
for blobs in ref.params.values():
    for blob in blobs:
        blob.data[...] = rng.standard_normal(blob.data.shape) * 0.5
ref.save(os.path.join(folder, "eval.caffemodel"))
write(os.path.join(folder, "eval-net.prototxt"), MLP % {"batch": 4, "dim": DIM, "classes": CLASSES, "hidden": 16})
np.save(os.path.join(folder, "eval-x.npy"), x.reshape(rows, -1))
np.save(os.path.join(folder, "eval-y.npy"), y.astype(np.int64))
ref.set_input_arrays(x, y)
ref.forward()
guess = ref.blobs["ip4"].data.reshape(rows, -1).argmax(axis=1)
print("REF %d %d %.9g" % (rows, int((guess == y.astype(int)).sum()), float(ref.blobs["loss"].data)))
