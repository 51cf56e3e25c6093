"""Elastic training with Caffe (test/elastic.test.ts): unicc.elastic.State holding
unicc.caffe.elastic.SolverState (weights, SGD's momenta, the iteration).

    elastic.py train SEED FOLDER STEPS COMMIT_EVERY KILLS
        trains the MLP of nets.py (SGD with momentum and weight decay, the learning rate halved
        every 3 iterations) under unicc.elastic.run, one solver.step(1) per step; KILLS "2@5":
        worker 2 SIGKILLs itself at the start of iteration 5, leaving a slab file behind as a client
        does whose bridge had not mapped it yet ("2@5b": it SIGKILLs its bridge). With JOIN_AT=S, rank 0 writes JOIN_LINE into the
        discovery script's JOIN_HOSTS after iteration S and every rank commits until the job has
        JOIN_SIZE ranks. Rank 0 prints "START step=S size=N" at each
        (re)start; every rank prints "FINAL <weights>".
    elastic.py reference SEED FOLDER STEPS SCHEDULE
        the same iterations in one process with plain pycaffe ("0:3,4:2": 3 ranks from iteration 0,
        2 from 4): each iteration's gradient is the average of every rank's batch's, computed in
        Caffe's on_gradients_ready callback. Prints "FINAL <weights>".

Each iteration's rows depend on (step, rank, size) only.
"""

import os
import signal
import sys
import time

os.environ.setdefault("GLOG_minloglevel", "2")
import caffe  # noqa: E402
import numpy as np  # noqa: E402

from nets import dataset, write_solver  # noqa: E402

ROWS, PER_RANK = 96, 4
POLICY = 'lr_policy: "step" gamma: 0.5 stepsize: 3'


def solver_file(folder):
    return write_solver(folder, "sgd", PER_RANK, policy=POLICY)


def shard(x, y, step, rank, size):
    """Rank's part of the step's global batch of size*PER_RANK rows."""
    rows = [(step * 7 + i) % ROWS for i in range(size * PER_RANK)][rank * PER_RANK:(rank + 1) * PER_RANK]
    return np.ascontiguousarray(x[rows]), np.ascontiguousarray(y[rows])


def weights(net):
    return " ".join(repr(float(v)) for v in np.concatenate([b.data.ravel() for k, blobs in net.params.items() for b in blobs]))


def train(seed, folder, steps, commit_every, kills):
    import unicc
    import unicc.elastic
    import unicc.caffe as uc
    from unicc.caffe.elastic import SolverState

    b = uc.init()
    kill = dict(k.split("@") for k in kills.split(",") if k).get(os.environ.get("UNICC_ELASTIC_ID"))
    join_at = int(os.environ.get("JOIN_AT", "-1"))
    x, y = dataset(seed, ROWS)
    solver = uc.get_solver(solver_file(folder))

    def on_start():
        if kill == "%db" % solver.iter:  # its bridge instead: this rank then fails with BridgeError
            os.kill(int(os.environ["UNICC_BRIDGE_PID"]), signal.SIGKILL)
        if kill == str(solver.iter):
            leftover = os.path.join(os.environ["UNICC_BRIDGE_DIR"], "unicc-%s-bridge-%s-%d-999" % (
                os.environ["UNICC_JOB_ID"], os.environ["UNICC_RANK"], os.getpid()))
            open(leftover, "wb").close()
            os.kill(os.getpid(), signal.SIGKILL)

    solver.add_callback(on_start, lambda: None)
    state = unicc.elastic.State(solver=SolverState(solver), step=0)

    @unicc.elastic.run
    def loop(state):
        if b.rank == 0:
            print("START step=%d size=%d" % (state.step, b.size), flush=True)
        assert solver.iter == state.step, (solver.iter, state.step)
        while state.step < steps:
            bx, by = shard(x, y, state.step, b.rank, b.size)
            solver.net.set_input_arrays(bx, by)
            solver.step(1)
            state.step += 1
            if state.step % commit_every == 0:
                state.commit()
            if state.step == join_at:  # rank 0 offers a slot; all commit until the newcomer is in
                if b.rank == 0:
                    with open(os.environ["JOIN_HOSTS"], "w") as f:
                        f.write(os.environ["JOIN_LINE"] + "\n")
                while b.size != int(os.environ["JOIN_SIZE"]):
                    time.sleep(0.1)
                    state.commit()

    loop(state)
    print("FINAL " + weights(solver.net), flush=True)
    unicc.shutdown()


def reference(seed, folder, steps, schedule):
    x, y = dataset(seed, ROWS)
    solver = caffe.get_solver(solver_file(folder))
    net = solver.net
    starts = sorted((int(a), int(b)) for a, b in (p.split(":") for p in schedule.split(",")))
    blobs = {b.diff.__array_interface__["data"][0]: b for v in net.params.values() for b in v}.values()  # shared ones once

    def averaged():
        """Replaces the solver's own backward with the average over the step's ranks' batches."""
        step = solver.iter
        size = [n for s, n in starts if s <= step][-1]
        for blob in blobs:
            blob.diff[...] = 0
        for rank in range(size):
            held[:] = shard(x, y, step, rank, size)  # Caffe reads them where they are
            net.set_input_arrays(*held)
            net.forward()
            net.backward()  # Caffe adds the parameters' gradients to their diffs
        for blob in blobs:
            blob.diff[...] /= size

    solver.add_callback(lambda: None, averaged)
    held = list(shard(x, y, 0, 0, 1))  # what the solver's own forward reads, before the callback
    net.set_input_arrays(*held)
    for _ in range(steps):
        solver.step(1)
    print("FINAL " + weights(net), flush=True)


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "train":
        train(int(args[0]), args[1], int(args[2]), int(args[3]), args[4] if len(args) > 4 else "")
    else:
        reference(int(args[0]), args[1], int(args[2]), args[3])
