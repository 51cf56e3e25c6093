# The command ring's own checks in the bridge (a client that skips the Python client's checks):
# entries naming an unmapped buffer, a span beyond the buffer, a misaligned offset, an unknown
# dtype, op or collective, a root out of range, a name on a broadcast, and bytes a pending request
# still works on, are each answered with an error naming the bridge's rank, and the ring stays usable; results against references. With
# "corrupt": a submission counter that jumps ahead makes the bridge drop the client, whose waits
# raise BridgeError at once. Plain unicc, no torch.
import struct
import sys

import unicc
from unicc import _ring

mode = sys.argv[1] if len(sys.argv) > 1 else "checks"
b = unicc.init()
assert b.transport == "ring", b.transport
r, n = b.rank, b.size
slab = b.alloc(4096)
vals = struct.Struct("<1024f")
b.submit("barrier").wait()  # the slab is mapped before raw entries name it


def raw(**fields):
    """A request written straight into the ring, as a client without our checks could."""
    from unicc._bridge import Handle

    req = next(b._ids)
    h = Handle(b, "raw", b._ring)
    b._register(b._pending, req, h)
    b._ring.submit(req, full=lambda: b._ring.pump(None, 0.5), **fields)
    return h


if mode == "corrupt":
    if r == 0:
        from unicc._bridge import Handle

        h = Handle(b, "a request the bridge never sees", b._ring)
        b._register(b._pending, 0, h)
        b._ring._sq_tail.value = (b._ring._sent + 1000) & 0xFFFFFFFF
        _ring._syscall(_ring._SYS_FUTEX, b._ring._sq_addr, _ring._FUTEX_WAKE, 1, None, None, 0)
        try:
            h.wait()
            raise SystemExit("a corrupt ring was accepted")
        except unicc.BridgeError as e:
            assert "corrupt" in str(e), str(e)
        print("OK corrupt rank 0", flush=True)
        sys.exit(0)
    try:
        b.submit("barrier").wait()
    except unicc.UniccError as e:
        print("OK peer saw rank 0 go: %s" % str(e).splitlines()[0], flush=True)
    sys.exit(0)

bad = [
    (dict(coll=0, dtype=0, buf=slab.id + 999, count=1), "is not mapped"),
    (dict(coll=0, dtype=0, buf=slab.id, count=1025), "do not fit buffer"),
    (dict(coll=0, dtype=1, buf=slab.id, count=1, offset=4), "do not fit buffer"),
    (dict(coll=0, dtype=7, buf=slab.id, count=1), "unknown dtype"),
    (dict(coll=0, dtype=0, op=9, buf=slab.id, count=1), "unknown reduce op"),
    (dict(coll=9), "unknown collective"),
    (dict(coll=1, dtype=0, buf=slab.id, count=1, root=n), "is not a rank"),
    (dict(coll=1, dtype=0, buf=slab.id, count=1, name=b"x"), "only an allreduce may be named"),
    (dict(coll=2, dtype=0, buf=slab.id, count=1, out=slab.id, out_offset=4096 - 4), "do not fit buffer"),
]
# Buffer 0 is this process's own memory (cross-memory attach): only for unnamed allreduces and
# broadcasts of memory that is there, and only where the bridge could attach.
own = slab.buffer  # our mapping of the slab: memory of ours, at a real address
import ctypes  # noqa: E402

addr = ctypes.addressof(ctypes.c_char.from_buffer(own))
if b.attach is True:
    bad += [
        (dict(coll=2, dtype=0, buf=0, offset=addr, count=1, out=slab.id), "only an allreduce or a broadcast"),
        (dict(coll=0, dtype=0, buf=0, offset=addr, count=1, name=b"n"), "needs a mapped buffer"),
        (dict(coll=0, dtype=0, buf=0, offset=8, count=1), "Bad address"),
        (dict(coll=0, dtype=0, buf=0, offset=addr, count=1 << 62), "do not fit the address space"),
        (dict(coll=0, dtype=0, buf=0, offset=(1 << 64) - 8, count=4), "wraps around"),
    ]
else:
    bad.append((dict(coll=0, dtype=0, buf=0, offset=addr, count=1), "needs cross-memory attach"))
for fields, words in bad:
    try:
        raw(**fields).wait()
        raise SystemExit("accepted %r" % fields)
    except unicc.UniccError as e:
        assert words in str(e) and ("rank %d" % r) in str(e), (fields, str(e))
# Memory a pending request works on is refused to a second one (as World does for Node callers):
# rank 0's named allreduce waits for rank 1's, which comes only after the barrier.
if r == 0:
    held = b.submit("allreduce", slab, "f32", 256, 0, op="sum", name="held")
    try:
        b.submit("allreduce", slab, "f32", 256, 512, op="sum").wait()
        raise SystemExit("an overlapping request was accepted")
    except unicc.UniccError as e:
        assert "still in use" in str(e) and "rank 0" in str(e), str(e)
    b.submit("barrier").wait()
else:
    b.submit("barrier").wait()
    held = b.submit("allreduce", slab, "f32", 256, 0, op="sum", name="held")
held.wait()
# Still usable: an allreduce of everybody's rank-seeded values against the sum computed here.
vals.pack_into(slab.buffer, 0, *[(r + 1) * i for i in range(1024)])
b.submit("allreduce", slab, "f32", 1024, op="sum").wait()
got = vals.unpack_from(slab.buffer, 0)
want = [sum(k + 1 for k in range(n)) * i for i in range(1024)]
assert all(abs(g - w) <= 1e-3 * abs(w) for g, w in zip(got, want)), "wrong sum"
print("OK ring %d checks rank %d of %d" % (len(bad) + 2, r, n), flush=True)  # + the overlap and the sum
unicc.shutdown()
