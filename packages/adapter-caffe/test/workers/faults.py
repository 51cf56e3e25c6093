"""Rank VICTIM (or, with "bridge", its bridge) is killed at iteration 3 of SGD training; every other
rank must raise from solver.step naming it. Prints "RAISED <seconds> <message>" and exits 3."""

import os
import signal
import sys
import time

os.environ.setdefault("GLOG_minloglevel", "2")
import unicc.caffe as uc  # noqa: E402
from nets import dataset, write_solver  # noqa: E402

seed, folder, victim, what = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
# The launcher stops everybody once the victim dies; outlive its SIGTERM so that what unicc itself
# reports can be checked (its SIGKILL after the grace period still ends us).
signal.signal(signal.SIGTERM, lambda *_: None)
b = uc.init()
solver = uc.get_solver(write_solver(folder, "sgd", 4))
x, y = dataset(seed, 8 * b.size * 4)
solver.net.set_input_arrays(uc.data.shard_batches(x, 4), uc.data.shard_batches(y, 4))
killed_at = [None]


def on_start():
    if solver.iter == 3 and b.rank == victim:
        os.kill(int(os.environ["UNICC_BRIDGE_PID"]) if what == "bridge" else os.getpid(), signal.SIGKILL)
        time.sleep(0.2)  # our own collective then fails: the bridge is gone


solver.add_callback(on_start, lambda: None)
t0 = time.monotonic()
try:
    solver.step(8)
except Exception as e:  # noqa: BLE001 - what the user sees is the point
    print("RAISED %.1f %s: %s" % (time.monotonic() - t0, type(e).__name__, e), flush=True)
    sys.exit(3)
print("NOT RAISED", flush=True)
