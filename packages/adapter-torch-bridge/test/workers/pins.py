# Many threads reduce more shared storages than the client keeps mapped (its cache of descriptor
# mappings is cut to LIMIT here, so that evictions happen all the time): a mapping another thread
# is about to submit on, or has in flight, must stay mapped until that request is done. Named
# allreduces, so that the threads' order may differ between ranks; values against references.
import sys
import threading

import torch

import unicc.torch as uc
from unicc.torch import _ops

seed, threads, per_thread, rounds = int(sys.argv[1]), 8, 6, 4
_ops._shared.LIMIT = int(sys.argv[2]) if len(sys.argv) > 2 else 4
uc.init()
r, n = uc.rank(), uc.size()


def inputs(rank, k):
    g = torch.Generator().manual_seed(seed * 1000 + rank * 97 + k)
    return torch.randn(257 + k, generator=g, dtype=torch.float64)


def worker(w, errors):
    try:
        mine = [inputs(r, w * per_thread + j).share_memory_() for j in range(per_thread)]
        for rnd in range(rounds):
            hs = [uc.allreduce_async_(t, op=uc.Sum, name="pin.%d.%d.%d" % (w, j, rnd)) for j, t in enumerate(mine)]
            for h in hs:
                h.wait()
        for j, t in enumerate(mine):
            ref = sum(inputs(k, w * per_thread + j) for k in range(n)) * n ** (rounds - 1)
            if not torch.allclose(t, ref, rtol=1e-9, atol=1e-6):
                errors.append("MISMATCH thread %d tensor %d: %s" % (w, j, (t - ref).abs().max()))
    except Exception as e:  # noqa: BLE001 - reported below
        errors.append("thread %d: %s" % (w, e))


errors = []
ts = [threading.Thread(target=worker, args=(w, errors)) for w in range(threads)]
for t in ts:
    t.start()
for t in ts:
    t.join()
if errors:
    raise SystemExit("\n".join(errors[:5]))
print("OK pins rank %d of %d: %d tensors through a cache of %d" % (r, n, threads * per_thread, _ops._shared.LIMIT), flush=True)
uc.shutdown()
