"""Caffe on unicc (pycaffe 1.0, Python 3.9+): data-parallel training through Caffe's own solver callbacks.

    import unicc.caffe as uc
    solver = uc.get_solver("lenet_solver.prototxt")   # rank-aware solver; its diffs averaged across ranks
    solver.step(100)

`distribute(solver)` does the averaging for a solver you built yourself; `data` shards inputs; `evaluate(net, x, y, scores)` tests a net on N ranks;
`elastic.SolverState(solver)` holds a solver in unicc.elastic.State (elastic jobs).
"""

from ._distribute import Distributed, distribute
from ._evaluate import evaluate
from ._solver import SolverFileError, get_solver, init, read_solver
from . import data

__all__ = ["Distributed", "distribute", "get_solver", "init", "read_solver", "SolverFileError", "data", "evaluate"]
