# The bare client package, as the MXNet and Caffe adapters use it: no torch, no numpy, any Python
# from 3.9. Each rank's values come from random.Random((seed, rank)), so every rank can rebuild all.
import array as arraymod
import random
import struct
import sys

import unicc

seed = int(sys.argv[1])
b = unicc.init()
r, n = b.rank, b.size
FORMATS = {"f32": "f", "f64": "d", "i32": "i", "i64": "q"}


def values(rank, dtype, count):
    g = random.Random(seed * 100 + rank)
    if dtype.startswith("f"):
        return [g.uniform(-100, 100) for _ in range(count)]
    return [g.randint(-10000, 10000) for _ in range(count)]


def rounded(dtype, xs):
    """What the values are once stored in dtype (float32 rounds)."""
    f = FORMATS[dtype]
    return list(struct.unpack("%d%s" % (len(xs), f), struct.pack("%d%s" % (len(xs), f), *xs)))


checked = 0
for dtype, f in FORMATS.items():
    count = 1000
    slab = b.alloc(count * unicc.DTYPE_BYTES[dtype])
    view = memoryview(slab.buffer).cast(f)
    everyone = [rounded(dtype, values(k, dtype, count)) for k in range(n)]

    array = arraymod.array(f, everyone[r])
    view[:count] = array
    b.submit("allreduce", slab, dtype, count, op="sum").wait()
    ref = [sum(col) for col in zip(*everyone)]
    tol = 1e-3 if dtype == "f32" else 1e-9
    assert all(abs(a - e) <= tol * max(1.0, abs(e)) for a, e in zip(view[:count], ref)), "allreduce %s" % dtype

    view[:count] = array
    b.submit("broadcast", slab, dtype, count, root=n - 1).wait()
    assert list(view[:count]) == everyone[n - 1], "broadcast %s" % dtype

    out = b.alloc(n * count * unicc.DTYPE_BYTES[dtype])
    out_view = memoryview(out.buffer).cast(f)
    view[:count] = array
    b.submit("allgather", slab, dtype, count, out=out).wait()
    assert list(out_view[:n * count]) == [x for e in everyone for x in e], "allgather %s" % dtype
    del view, out_view
    checked += 3
b.submit("barrier").wait()
assert "torch" not in sys.modules and "numpy" not in sys.modules
print("OK %d checks rank %d of %d python %d.%d" % (checked, r, n, sys.version_info[0], sys.version_info[1]), flush=True)
