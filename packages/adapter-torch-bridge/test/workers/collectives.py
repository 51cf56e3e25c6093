# Collectives through the bridge against references computed here from every rank's inputs
# (each rank's input comes from a generator seeded by (seed, rank), so any rank can rebuild all).
import sys

import torch

import unicc.torch as uc

seed = int(sys.argv[1])
uc.init()
r, n = uc.rank(), uc.size()


def inputs(rank, dtype, shape):
    g = torch.Generator().manual_seed(seed * 1000 + rank)
    if dtype.is_floating_point:
        return (torch.randn(shape, generator=g, dtype=torch.float64) * 10).to(dtype)
    return torch.randint(-1000, 1000, shape, generator=g).to(dtype)


checked = 0
for dtype in (torch.float32, torch.float64, torch.int32, torch.int64, torch.float16):
    for shape in ((1,), (37, 5), (1 << 16,)):
        mine = inputs(r, dtype, shape)
        everyone = [inputs(k, dtype, shape) for k in range(n)]
        wide = torch.float64 if dtype.is_floating_point else torch.int64
        for op, ref in ((uc.Sum, sum(e.to(wide) for e in everyone)),
                        (uc.Max, torch.stack(everyone).max(0).values.to(wide)),
                        (uc.Min, torch.stack(everyone).min(0).values.to(wide))):
            got = uc.allreduce(mine, op=op)
            assert got.dtype == dtype and got.shape == mine.shape
            tol = 1e-2 if dtype == torch.float16 else 1e-5
            if not torch.allclose(got.to(wide), ref, rtol=tol, atol=tol * 10 * n):
                raise SystemExit("MISMATCH allreduce %s %s %s: max diff %s" % (dtype, shape, op, (got.to(wide) - ref).abs().max()))
            checked += 1
        if dtype.is_floating_point:
            avg = uc.allreduce(mine, op=uc.Average)
            ref = sum(e.to(torch.float64) for e in everyone) / n
            assert torch.allclose(avg.to(torch.float64), ref, rtol=1e-2 if dtype == torch.float16 else 1e-5, atol=1e-3), "average"
            checked += 1
        root = seed % n
        assert torch.equal(uc.broadcast(mine, root_rank=root), everyone[root]), "broadcast %s %s" % (dtype, shape)
        assert torch.equal(uc.allgather(mine), torch.cat(everyone)), "allgather %s %s" % (dtype, shape)
        checked += 2

# Many requests in flight at once, completed in any order of waiting.
ts = [inputs(r, torch.float32, (1000 + k,)) for k in range(32)]
hs = [uc.allreduce_async(t, op=uc.Sum, name="t%d" % k) for k, t in enumerate(ts)]
for k in reversed(range(32)):
    ref = sum(inputs(q, torch.float32, (1000 + k,)).double() for q in range(n))
    assert torch.allclose(hs[k].wait().double(), ref, rtol=1e-5, atol=1e-4), "async %d" % k
    checked += 1
uc.barrier()
print("OK %d checks rank %d of %d" % (checked, r, n), flush=True)
