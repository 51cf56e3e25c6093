# Each way a tensor reaches the core, against references computed here from every rank's inputs
# (seeded by (seed, rank), so any rank can rebuild all): shared storages reduced in place (no slab),
# views into them at an offset, plain memory (worked on where it lies by cross-memory attach, or
# copied where the bridge cannot attach), the copied ones (non-contiguous, other dtypes); then the
# bounds on descriptor-mapped memory (oversize requests, files that are not shared memory); and a
# tensor dist.all_reduce sees again and again (as DDP's buckets) moving to shared memory.
import os
import sys
import tempfile

import torch

import unicc
import unicc.torch as uc

seed = int(sys.argv[1])
if len(sys.argv) > 2:  # emulated hosts: torch.distributed's store on host 0's own address
    os.environ["MASTER_ADDR"] = sys.argv[2]
uc.init()
b = unicc.bridge()
r, n = uc.rank(), uc.size()


def inputs(rank, dtype, shape):
    g = torch.Generator().manual_seed(seed * 1000 + rank)
    if dtype.is_floating_point:
        return (torch.randn(shape, generator=g, dtype=torch.float64) * 10).to(dtype)
    return torch.randint(-1000, 1000, shape, generator=g).to(dtype)


def reference(dtype, shape):
    wide = torch.float64 if dtype.is_floating_point else torch.int64
    return sum(inputs(k, dtype, shape).to(wide) for k in range(n))


def check(what, got, ref, tol=1e-5):
    if not torch.allclose(got.to(ref.dtype), ref, rtol=tol, atol=tol * 10 * n):
        raise SystemExit("MISMATCH %s: max diff %s" % (what, (got.to(ref.dtype) - ref).abs().max()))


allocs = [0]
_alloc = b.alloc


def counting_alloc(nbytes):
    allocs[0] += 1
    return _alloc(nbytes)


b.alloc = counting_alloc


def slabs_made(fn):
    """How many slabs fn took from the client (none on the zero-copy path)."""
    before = allocs[0]
    fn()
    return allocs[0] - before


checks = 0
for dtype in (torch.float32, torch.float64, torch.int32, torch.int64):
    for shape in ((1,), (37, 5), (1 << 18,)):
        t = inputs(r, dtype, shape).share_memory_()
        made = slabs_made(lambda: uc.allreduce_(t, op=uc.Sum))
        assert made == 0, "shared %s %s went through %d slabs" % (dtype, shape, made)
        check("shared %s %s" % (dtype, shape), t, reference(dtype, shape))
        checks += 1

# A view at an element offset inside a shared storage: only its elements change.
whole = inputs(r, torch.float32, (1000,)).share_memory_()
mine = whole.clone()
view = whole[3:517]
assert slabs_made(lambda: uc.allreduce_(view, op=uc.Sum)) == 0
check("view at offset 3", view, reference(torch.float32, (1000,))[3:517])
assert torch.equal(whole[:3], mine[:3]) and torch.equal(whole[517:], mine[517:]), "outside the view changed"
checks += 1

# Broadcast in place on a shared tensor.
t = inputs(r, torch.float64, (4097,)).share_memory_()
assert slabs_made(lambda: uc.broadcast_(t, root_rank=n - 1)) == 0
check("shared broadcast", t, inputs(n - 1, torch.float64, (4097,)).to(torch.float64))
checks += 1

# Copied: shared but non-contiguous, shared but a dtype the core lacks; plain memory too where
# the bridge cannot attach to ours (else it works on it where it lies: no slab).
attached = b.attach is True
copied = 0 if attached else 1
base = inputs(r, torch.float32, (64, 33)).share_memory_()
strided = base.t()
assert slabs_made(lambda: uc.allreduce_(strided, op=uc.Sum)) == 1
check("non-contiguous shared", strided, reference(torch.float32, (64, 33)).t())
half = inputs(r, torch.float16, (999,)).share_memory_()
assert slabs_made(lambda: uc.allreduce_(half, op=uc.Sum)) == 1
check("float16 shared", half, reference(torch.float16, (999,)), tol=1e-2)
plain = inputs(r, torch.int64, (12345,))
assert slabs_made(lambda: uc.allreduce_(plain, op=uc.Sum)) == copied
check("plain", plain, reference(torch.int64, (12345,)))
checks += 3

# Plain memory where attach works or not, the same results: an average over several shared-memory
# pieces (divided piece by piece), integer averages truncating, an address no element boundary
# aligns, a broadcast, and one-round sizes.
for dtype, shape in ((torch.float32, ((1 << 18) + 3,)), (torch.int64, (70001,)), (torch.float64, (3,))):
    t = inputs(r, dtype, shape)
    assert slabs_made(lambda: uc.allreduce_(t, op=uc.Average)) == copied
    total = reference(dtype, shape)
    check("plain average %s %s" % (dtype, shape), t, total / n if dtype.is_floating_point else torch.div(total, n, rounding_mode="trunc"))
raw_bytes = bytearray(4 * 5001 + 2)
odd = torch.frombuffer(raw_bytes, dtype=torch.float32, offset=2, count=5001)
assert odd.data_ptr() % 4 == 2
odd.copy_(inputs(r, torch.float32, (5001,)))
assert slabs_made(lambda: uc.allreduce_(odd, op=uc.Sum)) == copied
check("plain at an odd address", odd, reference(torch.float32, (5001,)))
t = inputs(r, torch.float64, (100003,))
assert slabs_made(lambda: uc.broadcast_(t, root_rank=1)) == copied
check("plain broadcast", t, inputs(1, torch.float64, (100003,)))
checks += 3
if attached:
    # Memory that is not there: refused before the collective starts, naming the rank; the world goes on.
    try:
        b.submit_at("allreduce", 8, "f32", 4, op="sum").wait()
        raise SystemExit("an allreduce at address 8 was accepted")
    except unicc.UniccError as e:
        assert "Bad address" in str(e) and "rank %d" % r in str(e), str(e)
    checks += 1

# Copied tensors of one size in different shapes (and none: a 0-dim tensor) reuse one pooled
# slab, whose views are cached by shape: each result lands in its own shape.
for shape, transpose in (((6, 35), False), ((35, 6), False), ((210,), False), ((6, 35), True), ((), False)):
    t = inputs(r, torch.float64, shape)
    t = t.t() if transpose else t
    uc.allreduce_(t, op=uc.Sum)
    ref = reference(torch.float64, shape)
    check("copied shape %s%s" % (shape, " transposed" if transpose else ""), t, ref.t() if transpose else ref)
checks += 1

# Bounds: a request beyond a mapped storage fails naming the buffer, the bridge stays usable.
t = torch.zeros(100).share_memory_()
fd, nbytes = t.untyped_storage()._share_fd_cpu_()[:2]
slab = b.map_fd(fd, nbytes)
for count, offset in ((101, 0), (100, 4), (1, 400)):
    try:
        b.submit("allreduce", slab, "f32", count, offset, op="sum").wait()
        raise SystemExit("OVERSIZE %d at %d was accepted" % (count, offset))
    except unicc.UniccError as e:
        assert "do not fit buffer" in str(e), str(e)
try:
    b.submit("allreduce", slab, "f32", 1, 2, op="sum").wait()
    raise SystemExit("a misaligned offset was accepted")
except unicc.UniccError as e:
    assert "do not fit buffer" in str(e), str(e)
b.unmap(slab)
try:
    b.submit("allreduce", slab, "f32", 1, op="sum").wait()
    raise SystemExit("an unmapped buffer was used")
except unicc.UniccError as e:
    assert "is not mapped" in str(e), str(e)
try:
    b.map_fd(fd, nbytes + 4096)
    raise SystemExit("a mapping beyond the file was accepted")
except unicc.UniccError as e:
    assert "at least" in str(e), str(e)
with tempfile.TemporaryFile(dir="/var/tmp") as f:  # on disk, not shared memory
    f.truncate(4096)
    try:
        b.map_fd(f.fileno(), 4096)
        raise SystemExit("a file on disk was mapped")
    except unicc.UniccError as e:
        assert "is not shared memory" in str(e), str(e)
checks += 4
t += 1
uc.allreduce_(t, op=uc.Sum)  # still works after the refusals
check("after refusals", t, torch.full((100,), float(n), dtype=torch.float64))
checks += 1

# dist.all_reduce on backend "unicc" of one large tensor, again and again (as DDP's buckets come):
# copied the first time; the second moves it to shared memory (same storage, values kept), in place from then on.
import torch.distributed as dist  # noqa: E402

dist.init_process_group(backend="unicc")
bucket = inputs(r, torch.float32, (1 << 15,))
storage = bucket.untyped_storage()
grads = bucket[100:200]  # a view, as DDP's gradients are of its bucket
once = sum(inputs(k, torch.float32, (1 << 15,)).to(torch.float64) for k in range(n))
for step in range(3):
    made = slabs_made(lambda: dist.all_reduce(bucket))
    assert made == (copied if step == 0 else 0), "step %d took %d slabs" % (step, made)
    check("dist.all_reduce step %d" % step, bucket, once * n ** step)  # each step sums n equal tensors
    assert bucket.untyped_storage().data_ptr() == grads.untyped_storage().data_ptr() and torch.equal(grads, bucket[100:200])
assert bucket.is_shared() and bucket.untyped_storage()._cdata == storage._cdata
# Memory torch only wraps (here a slab, as DistributedOptimizer's gradients are) stays where it is.
slab = b.alloc(1 << 17)
wrapped = torch.frombuffer(slab.buffer, dtype=torch.float32)
wrapped.copy_(inputs(r, torch.float32, (1 << 15,)))
for step in range(2):
    dist.all_reduce(wrapped)
    check("dist.all_reduce of a slab, step %d" % step, wrapped, once * n ** step)
assert not wrapped.is_shared() and wrapped.data_ptr() == torch.frombuffer(slab.buffer, dtype=torch.float32).data_ptr()
b.release(slab)
checks += 1
dist.destroy_process_group()
print("OK %d checks rank %d of %d, attach %s" % (checks + 1, r, n, attached), flush=True)
uc.shutdown()
