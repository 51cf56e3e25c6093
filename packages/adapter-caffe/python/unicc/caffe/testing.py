"""`unicc-caffe test`: a trained net scored on every rank of a unicc job with unicc.caffe.evaluate
(Caffe has no maintained ONNX converter, so pycaffe itself scores it): each rank forwards its
contiguous part of the rows through the net's MemoryData layer; rank 0 logs the totals.

    unicc run -np 4 --bridge -- in-root.sh unicc-caffe test --model net.prototxt --weights w.caffemodel \\
        --data x.npy --labels y.npy [--scores BLOB]

--scores names the blob before softmax (default: the first bottom of the net's SoftmaxWithLoss or
Softmax layer). A missing or unparsable file is one line on stderr and exit code 1.
"""

import argparse
import os

from .train import _log

USAGE = "unicc-caffe test --model NET --weights W.caffemodel --data X.npy --labels Y.npy [--scores BLOB]"


def parser():
    p = argparse.ArgumentParser(prog="unicc-caffe", usage=USAGE)
    p.add_argument("command", choices=["test"])
    p.add_argument("--model", required=True, help="the net prototxt, fed by a MemoryData layer (TEST phase)")
    p.add_argument("--weights", required=True, help="the trained .caffemodel")
    p.add_argument("--data", required=True, help=".npy of the samples (first axis = samples)")
    p.add_argument("--labels", required=True, help=".npy of their classes")
    p.add_argument("--scores", help="the blob before softmax (default: the first bottom of a SoftmaxWithLoss or Softmax layer)")
    return p


def _layer(net, types):
    """(name, layer) of the net's first layer of one of `types`, else None."""
    return next(((n, l) for n, l in zip(net._layer_names, net.layers) if l.type in types), None)


def test(args):
    if (os.environ.get("UNICC_RANK") or os.environ.get("RANK") or "0") != "0":
        os.environ.setdefault("GLOG_minloglevel", "1")  # read by glog when caffe loads: rank 0 logs
    import numpy as np

    import unicc.caffe as uc
    from caffe.proto import caffe_pb2

    from ._solver import _parse

    _parse(args.model, caffe_pb2.NetParameter(), "net file")
    for f in (args.weights, args.data, args.labels):
        if not os.path.isfile(f):
            raise uc.SolverFileError("unicc-caffe: cannot read %s: no such file" % f)
    import caffe

    b = uc.init()
    net = caffe.Net(args.model, caffe.TEST, weights=args.weights)
    feed = _layer(net, ("MemoryData",))
    if feed is None:
        raise ValueError("unicc-caffe: test needs a net fed by a MemoryData layer; %s has none" % args.model)
    softmax = _layer(net, ("SoftmaxWithLoss", "Softmax"))
    scores = args.scores or (net.bottom_names[softmax[0]][0] if softmax else None)
    if scores is None:
        raise ValueError("unicc-caffe: %s has no SoftmaxWithLoss or Softmax layer: name the scores blob with --scores" % args.model)
    x, y = np.load(args.data), np.load(args.labels)
    sample = net.blobs[net.top_names[feed[0]][0]].data.shape[1:]
    if x.ndim < 1 or x[0].size != int(np.prod(sample)):
        raise ValueError("unicc-caffe: a sample of %s has %d values; the net's input takes %s" % (args.data, x[0].size if x.ndim else 0, "x".join(map(str, sample))))
    t = uc.evaluate(net, x.reshape((len(x),) + tuple(sample)), y, scores=scores)
    if b.rank == 0:
        _log("%d samples on %d rank(s), correct = %d" % (t["samples"], b.size, t["correct"]))
        _log("accuracy = %.6f" % t["accuracy"])
        _log("Loss: %.9g" % t["loss"])
    return t
