# Collectives through the bridge against references computed here from every rank's inputs
# (each rank's input comes from a generator seeded by (seed, rank), so any rank can rebuild all).
import sys

import torch

import unicc
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

# broadcast_parameters and broadcast_optimizer_state: every rank ends with root's model and Adam
# state, which every rank can also rebuild itself from root's seed.
def trained(rank):
    torch.manual_seed(seed * 7 + rank)
    model = torch.nn.Linear(6, 3)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(rank + 1):
        model(torch.randn(4, 6)).pow(2).sum().backward()
        opt.step()
    return model, opt


root = (seed + 1) % n
model, opt = trained(r)
uc.broadcast_parameters(model.state_dict(), root_rank=root)
uc.broadcast_optimizer_state(opt, root_rank=root)
ref_model, ref_opt = trained(root)
assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), ref_model.state_dict().values())), "parameters"
for p, q in zip(model.parameters(), ref_model.parameters()):
    got, want = opt.state[p], ref_opt.state[q]
    assert set(got) == set(want) and all(torch.equal(torch.as_tensor(got[k]), torch.as_tensor(want[k])) for k in want), "optimizer state"
assert opt.param_groups[0]["lr"] == ref_opt.param_groups[0]["lr"]
checked += 2

uc.barrier()
print("OK %d checks rank %d of %d over the %s" % (checked, r, n, unicc.bridge().transport), flush=True)
