# The client lane (unicc._lane): small unnamed requests of a one-host world run in this process.
# Against references computed here from every rank's inputs (seeded by (seed, rank), so any rank
# can rebuild all): every dtype and op at sizes from 1 element to the lane's limit, broadcasts from
# every root, barriers; a request one element over the limit goes to the bridge instead; large
# requests in flight on the ring while small ones run here; refusals that leave the lane usable
# (a bad address, an unaligned one, too many elements, unknown codes, a root out of range); and
# last, ranks that call different collectives: every rank fails, naming both calls, and the lane
# stays failed.
import sys

import torch

import unicc
import unicc.torch as uc

seed = int(sys.argv[1])
uc.init()
b = unicc.bridge()
r, n = uc.rank(), uc.size()
assert b.lane is not None, "no client lane: %s" % b.lane_why
lane = b.lane


def inputs(rank, dtype, count, small=False):
    g = torch.Generator().manual_seed(seed * 1000 + rank * 10 + count % 7)
    if dtype.is_floating_point:
        x = torch.rand(count, generator=g, dtype=torch.float64) + 0.5 if small else torch.randn(count, generator=g, dtype=torch.float64) * 10
        return x.to(dtype)
    lo, hi = (1, 4) if small else (-1000, 1000)
    return torch.randint(lo, hi, (count,), generator=g).to(dtype)


def reference(dtype, count, op):
    wide = torch.float64 if dtype.is_floating_point else torch.int64
    xs = torch.stack([inputs(k, dtype, count, small=op == uc.Product).to(wide) for k in range(n)])
    if op == uc.Sum:
        return xs.sum(0)
    if op == uc.Average:
        return xs.sum(0) / n if dtype.is_floating_point else torch.div(xs.sum(0), n, rounding_mode="trunc")
    if op == uc.Min:
        return xs.min(0).values
    if op == uc.Max:
        return xs.max(0).values
    return xs.prod(0)


def check(what, got, ref):
    tol = 1e-5 if got.dtype != torch.float32 else 1e-4
    if not torch.allclose(got.to(ref.dtype), ref, rtol=tol, atol=tol * 10 * n):
        raise SystemExit("MISMATCH %s: max diff %s" % (what, (got.to(ref.dtype) - ref).abs().max()))


def on_lane(fn):
    """Runs fn; how many requests the lane ran meanwhile."""
    before = lane.calls
    fn()
    return lane.calls - before


checks = 0
for dtype in (torch.float32, torch.float64, torch.int32, torch.int64):
    most = lane.small_bytes // torch.tensor([], dtype=dtype).element_size()
    for count in (1, 37, 1000, most):
        for op in (uc.Sum, uc.Average, uc.Min, uc.Max, uc.Product):
            t = inputs(r, dtype, count, small=op == uc.Product)
            assert on_lane(lambda: uc.allreduce_(t, op=op)) == 1, "%s x%d %s did not run on the lane" % (dtype, count, op)
            check("%s x%d %s" % (dtype, count, op), t, reference(dtype, count, op))
            checks += 1
    # One element more than the lane takes: the bridge reduces it (by cross-memory attach).
    t = inputs(r, dtype, most + 1)
    assert on_lane(lambda: uc.allreduce_(t, op=uc.Sum)) == 0, "an oversize request ran on the lane"
    check("%s x%d through the bridge" % (dtype, most + 1), t, reference(dtype, most + 1, uc.Sum))
    checks += 1

for root in range(n):
    t = inputs(r, torch.float64, 513)
    assert on_lane(lambda: uc.broadcast_(t, root_rank=root)) == 1
    check("broadcast from %d" % root, t, inputs(root, torch.float64, 513).to(torch.float64))
    checks += 1
assert on_lane(uc.barrier) == 1
checks += 1

# The handle of a small request is finished when the call returns; wrong ops and dtypes are named.
t = inputs(r, torch.int32, 300)
handles = []
assert on_lane(lambda: handles.append(uc.allreduce_async_(t, op=uc.Min))) == 1
assert handles[0].done() and handles[0].exception() is None and handles[0].wait() is t
check("a small request's handle", t, reference(torch.int32, 300, uc.Min))
for call, error, expect in ((lambda: uc.allreduce_(t, op="median"), ValueError, "unknown op 'median'"),
                            (lambda: uc.allreduce_(torch.ones(4, dtype=torch.complex64)), TypeError, "complex64 are not supported")):
    try:
        call()
        raise SystemExit("no %s for %r" % (error.__name__, expect))
    except error as e:
        assert expect in str(e), str(e)
checks += 1

# Large requests in flight through the bridge while small ones run here: neither lane waits on the other.
big = [inputs(r, torch.float32, 1 << 18) for _ in range(3)]
handles = [uc.allreduce_async_(t, op=uc.Sum) for t in big]
for k in range(50):
    t = inputs(r, torch.int64, 100 + k)
    uc.allreduce_(t, op=uc.Sum)
    check("small %d beside large ones" % k, t, reference(torch.int64, 100 + k, uc.Sum))
for t, h in zip(big, handles):
    h.wait()
    check("large beside small ones", t, reference(torch.float32, 1 << 18, uc.Sum))
checks += 2

# Refused before any round, naming what is wrong; the lane goes on.
for what, call, expect in (
        ("absent memory", lambda: b.submit_at("allreduce", 8, "f32", 4, op="sum").wait(), "Bad address"),
        ("too many elements", lambda: lane.run((0, 0, 0, 0, True), big[0].data_ptr(), lane.small_bytes // 4 + 1), "exceed the client lane"),
        ("an unaligned address", lambda: lane.run((0, 0, 0, 0, True), big[0].data_ptr() + 2, 4), "not aligned"),
        ("an unknown dtype", lambda: lane.run((0, 9, 0, 0, True), big[0].data_ptr(), 4), "unknown dtype 9"),
        ("an unknown op", lambda: lane.run((0, 0, 7, 0, True), big[0].data_ptr(), 4), "unknown reduce op 7"),
        ("a root out of range", lambda: lane.run((1, 0, 0, n, True), big[0].data_ptr(), 4), "broadcast root %d is not a rank" % n),
        ("an allgather", lambda: lane.run((2, 0, 0, 0, True), big[0].data_ptr(), 4), "runs allreduce, broadcast and barrier")):
    try:
        error = call()
    except unicc.UniccError as e:
        error = str(e)
    assert error and expect in error, "%s: %r" % (what, error)
t = inputs(r, torch.float32, 64)
uc.allreduce_(t, op=uc.Max)
check("after refusals", t, reference(torch.float32, 64, uc.Max))
checks += 2

# Ranks that call different collectives (here: different sizes) fail on every rank, naming both.
t = torch.ones(10 + (r == n - 1))
try:
    uc.allreduce_(t, op=uc.Sum)
    raise SystemExit("a mismatch went unnoticed")
except unicc.UniccError as e:
    assert "ranks called different collectives" in str(e) and "rank %d (host " % (n - 1) in str(e), str(e)
try:
    uc.allreduce_(torch.ones(3), op=uc.Sum)
    raise SystemExit("the lane ran on after a mismatch")
except unicc.UniccError as e:
    assert "ranks called different collectives" in str(e), str(e)
try:
    uc.barrier()
    raise SystemExit("a barrier passed on a failed lane")
except unicc.UniccError as e:
    assert "ranks called different collectives" in str(e), str(e)
checks += 1
print("OK %d checks rank %d of %d on the client lane" % (checks, r, n), flush=True)
