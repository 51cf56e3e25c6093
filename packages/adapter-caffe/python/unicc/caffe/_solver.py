"""Solvers for a rank: the solver file read and checked up front (one clear error instead of Caffe's
fatal abort), Caffe told this rank's place (so its Data layers read every size-th record from the
rank-th, and only rank 0 tests, displays and snapshots: Caffe's root-solver rule), and the other
ranks' copy of the file with snapshots off."""

import os
import tempfile

import unicc


class SolverFileError(ValueError):
    """The solver file or the net it names is missing or does not parse."""


def init():
    """Starts this rank's bridge (once) and tells Caffe this rank's place; returns the bridge. Call it
    before building nets whose Data or HDF5Data layers should shard (their reader threads copy it then)."""
    import caffe

    b = unicc.init()
    caffe.set_mode_cpu()
    caffe.set_solver_count(b.size)
    caffe.set_solver_rank(b.rank)
    return b


def _parse(path, message, what):
    from google.protobuf import text_format

    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise SolverFileError("unicc.caffe: cannot read %s %s: %s" % (what, path, e.strerror)) from None
    try:
        return text_format.Merge(text, message)
    except text_format.ParseError as e:
        raise SolverFileError("unicc.caffe: %s %s does not parse: %s" % (what, path, e)) from None


def read_solver(path):
    """The SolverParameter in path, with its net file (net: or train_net:) checked to parse too."""
    from caffe.proto import caffe_pb2

    param = _parse(path, caffe_pb2.SolverParameter(), "solver file")
    for net in [param.net, param.train_net, *param.test_net]:
        if net:
            _parse(net, caffe_pb2.NetParameter(), "net file (named in %s)" % path)
    if not (param.net or param.train_net or param.HasField("net_param") or param.HasField("train_net_param")):
        raise SolverFileError("unicc.caffe: solver file %s names no net (net: or train_net:)" % path)
    return param


def get_solver(path, compression=None, max_iter=None, overlap=False):
    """This rank's solver for the solver file at path, distributed (see distribute). Ranks other than 0
    get it with snapshots off; max_iter overrides the file's; overlap as in distribute."""
    import caffe
    from google.protobuf import text_format

    from ._distribute import distribute

    param = read_solver(path)
    b = init()
    if max_iter is not None:
        param.max_iter = max_iter
    if not param.snapshot_prefix:  # what Caffe derives from the file's name, not from our copy's
        param.snapshot_prefix = path[:-len(".prototxt")] if path.endswith(".prototxt") else path
    # Relative to the working directory, the same place: unicc.caffe.elastic.SolverState snapshots
    # into a private folder by changing directory for the moment.
    param.snapshot_prefix = os.path.relpath(param.snapshot_prefix) + (os.sep if param.snapshot_prefix.endswith(os.sep) else "")
    if b.rank != 0:  # Caffe itself tests and snapshots on its root solver only; this keeps Solve's last ones off too
        param.test_initialization = False
        param.snapshot = 0
        param.snapshot_after_train = False
    # Caffe builds solvers from files only: a private copy, gone once read.
    fd, copy = tempfile.mkstemp(prefix="unicc-solver-", suffix=".prototxt")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text_format.MessageToString(param))
        solver = caffe.get_solver(copy)
    finally:
        os.unlink(copy)
    solver.unicc = distribute(solver, compression, overlap)
    solver.snapshot_prefix = param.snapshot_prefix  # pycaffe does not expose it (SolverState needs it)
    return solver
