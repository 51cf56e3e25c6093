"""Caffe in elastic jobs: `SolverState(solver)` holds a solver for unicc.elastic.State, like a torch
module: the net's learnable blobs, the solver's history (momenta, Adam's moments) and its iteration.

    solver = uc.get_solver("solver.prototxt")
    state = unicc.elastic.State(solver=SolverState(solver), step=0)

pycaffe does not expose the history blobs, so the state goes through Caffe's own snapshot: its
state_dict() is the bytes of the .caffemodel and .solverstate files solver.snapshot() writes, and
load_state_dict() writes them back and calls solver.restore(). Caffe names those files from the
solver's snapshot_prefix, which pycaffe can neither read nor change: a relative prefix (get_solver
makes it one) lands in a private folder this process chdirs into for the moment, so that ranks never
meet in the user's snapshot folder. Caffe snapshots on its root solver only: each rank passes for
it during the snapshot.
"""

import contextlib
import os
import shutil
import tempfile

import unicc

__all__ = ["SolverState"]


class SolverState:
    """The solver's learnable blobs, history and iteration, by state_dict()/load_state_dict() (see the
    module's notes). `snapshot_prefix`: the solver's, relative to the working directory, for a solver
    not built by get_solver (which records it as solver.snapshot_prefix)."""

    def __init__(self, solver, snapshot_prefix=None):
        prefix = snapshot_prefix or getattr(solver, "snapshot_prefix", None)
        if not prefix or os.path.isabs(prefix):
            raise ValueError("unicc.caffe: SolverState needs the solver's snapshot_prefix, relative to the working directory "
                             "(got %r): build the solver with unicc.caffe.get_solver, or give a relative snapshot_prefix "
                             "in its file and pass it as SolverState(solver, snapshot_prefix=...)" % (prefix,))
        self.solver = solver
        self._prefix = prefix
        # A prefix that climbs ("../snap/x") climbs from a folder this deep inside the private one.
        parts = os.path.normpath(prefix).split(os.sep)
        self._depth = next((i for i, p in enumerate(parts) if p != os.pardir), len(parts))

    def state_dict(self):
        import caffe

        with self._private() as (top, here):
            os.makedirs(os.path.dirname(os.path.join(here, self._prefix)), exist_ok=True)
            caffe.set_solver_rank(0)  # Caffe refuses to snapshot on other ranks
            try:
                self.solver.snapshot()
            finally:
                caffe.set_solver_rank(unicc.bridge().rank)
            files = {}
            for folder, _, names in os.walk(top):
                for name in names:
                    path = os.path.join(folder, name)
                    with open(path, "rb") as f:
                        files[os.path.relpath(path, top)] = f.read()
        state = [k for k in files if k.endswith((".solverstate", ".solverstate.h5"))]
        if len(state) != 1:
            raise RuntimeError("unicc.caffe: solver.snapshot() wrote %s into the private folder, not one solver state "
                               "(is the snapshot_prefix %r the solver's?)" % (sorted(files) or "nothing", self._prefix))
        return {"iter": self.solver.iter, "state": state[0], "files": files}

    def load_state_dict(self, d):
        import caffe

        with self._private() as (top, here):
            for rel, data in d["files"].items():
                path = os.path.join(top, rel)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as f:
                    f.write(data)
            # The solver state names its .caffemodel relative to `here`, as it was written.
            self.solver.restore(os.path.relpath(os.path.join(top, d["state"]), here))
        b = unicc.bridge()
        # The world may have re-formed: Caffe learns this rank's new place (which rank tests and
        # displays); the weights are everyone's already, so distribute()'s first-iteration broadcast
        # is not needed (a newcomer's would meet no partner).
        caffe.set_solver_count(b.size)
        caffe.set_solver_rank(b.rank)
        dist = getattr(self.solver, "unicc", None)
        if dist is not None:
            dist.synced()

    @contextlib.contextmanager
    def _private(self):
        """(top, here): a fresh private folder and the working directory inside it, removed after."""
        top = tempfile.mkdtemp(prefix="unicc-caffe-state-")
        here = os.path.join(top, *(["d"] * self._depth))
        os.makedirs(here, exist_ok=True)
        back = os.getcwd()
        os.chdir(here)
        try:
            yield top, here
        finally:
            os.chdir(back)
            shutil.rmtree(top, ignore_errors=True)

