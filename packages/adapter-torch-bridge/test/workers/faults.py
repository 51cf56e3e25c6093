# Failure cases, printed as lines the test reads:
#   peer V:   rank V kills itself mid-job; every other rank must raise naming rank V
#   bridge V: rank V's bridge is killed; rank V must raise naming its bridge, the others naming rank V
#   stall V:  rank V's bridge is stopped (SIGSTOP), alive but silent; rank V must give up on it
#   raise V:  rank V raises mid-job (uncaught); it must exit at once, every other rank raising naming it
#   raise-hooked V: the same after rank V installed an excepthook of its own (after init)
import os
import signal
import sys
import time

import torch

import unicc
import unicc.torch as uc

mode, victim = sys.argv[1], int(sys.argv[2])
# The launcher stops everybody once the victim dies; outlive its SIGTERM so that what unicc itself
# reports can be checked (its SIGKILL after the grace period still ends us).
signal.signal(signal.SIGTERM, lambda *_: print("SIGTERM ignored", flush=True))
uc.init()
r = uc.rank()
print("PID %d %d" % (os.getpid(), unicc.bridge().pid), flush=True)
t = torch.ones(1 << 10)
for _ in range(3):
    uc.allreduce(t)
uc.barrier()


def ms():
    return int(time.time() * 1000)


if r == victim:
    time.sleep(0.5)  # the others are waiting in a collective by now
    if mode == "peer":
        print("DYING %d" % ms(), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    if mode.startswith("raise"):
        if mode == "raise-hooked":
            def own_hook(kind, value, tb):
                print("OWN HOOK %s" % kind.__name__, flush=True)
                sys.__excepthook__(kind, value, tb)

            sys.excepthook = own_hook
        print("DYING %d" % ms(), flush=True)
        raise ValueError("rank %d gives up" % r)
    os.kill(unicc.bridge().pid, signal.SIGSTOP if mode == "stall" else signal.SIGKILL)
    print("DYING %d" % ms(), flush=True)
try:
    while True:
        uc.allreduce(t)
except uc.UniccError as e:
    print("ERROR %d %s: %s" % (ms(), type(e).__name__, str(e).replace("\n", " ")), flush=True)
    sys.exit(3)
