"""`unicc-caffe train`: `caffe train` on every rank of a unicc job, the diffs averaged across ranks.

    unicc run -np 4 -- unicc-caffe train --solver lenet_solver.prototxt [--weights W] [--snapshot S] [--iterations N]

Same flags (--weights takes a comma-separated list) and the same log lines as `caffe train` (rank 0
logs; the others log warnings and errors only). --iterations N overrides the solver's max_iter.
A missing or unparsable solver or net file is one line on stderr and exit code 1.
"""

import argparse
import os
import sys
import time

USAGE = "unicc-caffe train --solver S [--weights W[,W...]] [--snapshot S] [--iterations N] [--compression none|fp16|bf16]"


def _parser():
    p = argparse.ArgumentParser(prog="unicc-caffe", usage=USAGE)
    p.add_argument("command", choices=["train"])
    p.add_argument("--solver", required=True, help="the solver prototxt")
    p.add_argument("--weights", help="comma-separated caffemodel files to start from (cannot go with --snapshot)")
    p.add_argument("--snapshot", help="a .solverstate to resume from")
    p.add_argument("--iterations", type=int, help="iterations to train (overrides the solver's max_iter)")
    p.add_argument("--compression", choices=["none", "fp16", "bf16"], default="none", help="how diffs travel")
    return p


def _log(message):
    # glog's own layout, so the job's log reads like `caffe train`'s.
    t = time.time()
    print("I%s.%06d %5d caffe.cpp] %s" % (time.strftime("%m%d %H:%M:%S", time.localtime(t)), int(t % 1 * 1e6),
                                           os.getpid(), message), file=sys.stderr, flush=True)


def train(args):
    rank = int(os.environ.get("UNICC_RANK") or os.environ.get("RANK") or 0)
    if rank != 0:
        os.environ.setdefault("GLOG_minloglevel", "1")  # read by glog when caffe loads
    import unicc.caffe as uc

    if args.weights and args.snapshot:
        raise uc.SolverFileError("unicc-caffe: give --weights or --snapshot, not both (as caffe train)")
    for f in (args.weights.split(",") if args.weights else []) + ([args.snapshot] if args.snapshot else []):
        if not os.path.isfile(f):
            raise uc.SolverFileError("unicc-caffe: cannot read %s: no such file" % f)
    uc.read_solver(args.solver)  # before any rank starts its bridge: the same one line on every rank
    if rank == 0:
        _log("Use CPU.")
    solver = uc.get_solver(args.solver, compression=args.compression, max_iter=args.iterations)
    for w in args.weights.split(",") if args.weights else []:
        for net in [solver.net, *solver.test_nets]:
            net.copy_from(w)
    if rank == 0:
        _log("Starting Optimization")
    if rank == 0:  # Caffe's Solve: steps, then rank 0's final display, test and snapshot
        solver.solve(args.snapshot) if args.snapshot else solver.solve()
    else:  # Solve is for the root solver only (Caffe checks); the others step alongside
        if args.snapshot:
            solver.restore(args.snapshot)
        solver.step(solver.param.max_iter - solver.iter)
    if rank == 0:
        _log("Optimization Done.")
    return solver


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["test"]:  # `unicc-caffe test`: unicc/caffe/testing.py
        from . import testing

        command, args = testing.test, testing.parser().parse_args(argv)
    else:
        command, args = train, _parser().parse_args(argv)
    rank = os.environ.get("UNICC_RANK") or os.environ.get("RANK") or "0"
    try:
        command(args)
    except ValueError as e:  # SolverFileError and friends: the user's input, not a bug
        print("%s (rank %s)" % (e, rank), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
