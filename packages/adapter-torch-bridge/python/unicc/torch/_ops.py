"""Collectives on torch tensors through this rank's bridge, with no copy where the core can reach
the tensor's memory: small contiguous tensors of a one-host world are reduced by this process
itself, on its host's client lane (unicc._lane); a storage that is shared already
(share_memory_(), torch.multiprocessing's default "file_descriptor" strategy) is mapped by the
bridge through its descriptor; any other
contiguous CPU tensor of a core dtype is read and written where it lies by cross-memory attach
(Bridge.submit_at). The rest (non-contiguous, other dtypes, allgather, attach refused) is copied
into a shared-memory slab, worked on there, and copied back. CUDA tensors are staged through
host memory (the copy_ calls move them); a device transport would hand the core device pointers."""

import collections
import os
import threading

import torch

import unicc

Sum = "sum"
Average = "average"
Min = "min"
Max = "max"
Product = "product"


class Compression:
    """How the engine carries fp32 gradients on the wire (arithmetic stays fp32)."""

    none = "none"
    fp16 = "fp16"
    bf16 = "bf16"


# The core's element types; other dtypes travel as the nearest one that holds them exactly.
_WIRE = {
    torch.float32: (torch.float32, "f32"),
    torch.float64: (torch.float64, "f64"),
    torch.float16: (torch.float32, "f32"),
    torch.bfloat16: (torch.float32, "f32"),
    torch.int32: (torch.int32, "i32"),
    torch.int64: (torch.int64, "i64"),
    torch.int16: (torch.int32, "i32"),
    torch.int8: (torch.int32, "i32"),
    torch.uint8: (torch.int32, "i32"),
    torch.bool: (torch.int32, "i32"),
}


def _bridge():
    return unicc.bridge()


def _wire(t):
    return _wire_of(t.dtype)


def _wire_of(dtype):
    try:
        return _WIRE[dtype]
    except KeyError:
        raise TypeError("unicc.torch: tensors of dtype %s are not supported (%s)"
                        % (dtype, ", ".join(str(d) for d in _WIRE))) from None


_VIEWS_PER_SLAB = 32


def _view(slab, dtype, shape):
    """A tensor of `shape` over the start of a slab, cached per slab, dtype and shape (a training
    loop passes the same ones every step, and slicing and viewing cost more than the copy of a
    small tensor)."""
    v = slab.views.get((dtype, shape))
    if v is None:
        flat = slab.views.get(dtype)
        if flat is None:
            flat = torch.frombuffer(slab.buffer, dtype=dtype)
        if len(slab.views) >= _VIEWS_PER_SLAB:
            slab.views.clear()
        slab.views[dtype] = flat
        v = slab.views[(dtype, shape)] = flat[:shape.numel()].view(shape)
    return v


def _stage(t, shape=None):
    """A slab holding t's values in its wire dtype, as a tensor of t's shape (or, given `shape`, an
    empty one of that shape)."""
    wire, code = _wire(t)
    v_shape = t.shape if shape is None else torch.Size(shape)
    n = v_shape.numel()
    slab = _bridge().alloc(max(n, 1) * wire.itemsize)
    v = _view(slab, wire, v_shape)
    if shape is None and n:
        v.copy_(t.detach() if t.requires_grad else t)
    return slab, v, code


class _SharedStorages:
    """Slabs over shared storages the bridge has mapped, by the (device, inode) of their file: a
    storage's descriptor number may be reused after it dies, its inode not while the bridge maps it.
    At most LIMIT are kept (the least recently used is unmapped), since the bridge's mapping keeps
    a dead storage's pages. A slab is pinned from acquire() until its request is done (release()):
    evicting a pinned slab only takes it out of the cache, and its unmap waits for the last release,
    so no thread's request can name a buffer the bridge has already forgotten."""

    LIMIT = 64

    def __init__(self):
        self._lock = threading.Lock()
        self._slabs = collections.OrderedDict()
        self._pins = {}  # slab id -> requests using it
        self._evicted = set()  # ids of pinned slabs no longer in the cache: unmapped at their last release
        self._refused = set()  # files the bridge could not map: copy those

    def acquire(self, t):
        """The mapped slab holding t's storage (a tensor _core_code accepts), pinned, or None when
        its storage is not shared."""
        storage = t.untyped_storage()
        # untyped_storage().is_shared() is t.is_shared() without its Python wrapper (this runs for every request).
        if not storage.is_shared():
            return None
        try:
            fd, nbytes = storage._share_fd_cpu_()[:2]
        except RuntimeError:  # shared by file name (the "file_system" strategy): no descriptor to hand over
            return None
        st = os.fstat(fd)
        key = (st.st_dev, st.st_ino)
        with self._lock:
            slab = self._slabs.get(key)
            if slab is not None:
                self._slabs.move_to_end(key)
                self._pins[slab.id] += 1
                return slab
            if key in self._refused:
                return None
        b = _bridge()
        try:
            slab = b.map_fd(fd, nbytes)
        except unicc.BridgeError:  # the bridge is gone: not a refusal to fall back from
            raise
        except unicc.UniccError:
            with self._lock:
                self._refused.add(key)
            return None
        with self._lock:
            self._slabs[key] = slab
            self._pins[slab.id] = 1
            old = self._slabs.popitem(last=False)[1] if len(self._slabs) > self.LIMIT else None
            if old is not None and self._pins[old.id]:
                self._evicted.add(old.id)
                old = None
            elif old is not None:
                del self._pins[old.id]
        if old is not None:
            b.unmap(old)
        return slab

    def release(self, slab):
        """The request on slab (from acquire) is done."""
        with self._lock:
            self._pins[slab.id] -= 1
            if self._pins[slab.id] or slab.id not in self._evicted:
                return
            self._evicted.discard(slab.id)
            del self._pins[slab.id]
        _bridge().unmap(slab)


_shared = _SharedStorages()


class _Repeats:
    """Storages of large tensors allreduced more than once (DDP's bucket buffers: the same ones
    every step) move to shared memory, so that from then on they are reduced in place.
    share_memory_() copies once and keeps the storage itself, so every view of it (DDP's gradient
    views included) follows. Only storages torch allocated (resizable) move: memory it wraps (a
    slab, a numpy array) must stay where its owner expects it. Tracked by data pointer, at most LIMIT."""

    MIN_BYTES = 64 << 10
    LIMIT = 1024

    def __init__(self):
        self._lock = threading.Lock()
        self._seen = collections.OrderedDict()

    def share_if_repeated(self, t):
        storage = t.untyped_storage()
        if t.device.type != "cpu" or t.is_shared() or not storage.resizable() or storage.nbytes() < self.MIN_BYTES:
            return
        key = storage.data_ptr()
        with self._lock:
            again = self._seen.pop(key, None) is not None
            if not again:
                self._seen[key] = True
                if len(self._seen) > self.LIMIT:
                    self._seen.popitem(last=False)
        if again:
            with torch.no_grad():
                t.share_memory_()


share_if_repeated = _Repeats().share_if_repeated


def _core_code(t):
    """The core's dtype code when the core can work on t's own memory as it is (a contiguous,
    non-empty CPU tensor of a dtype the core has), else None."""
    if not t.is_cpu or not t.is_contiguous() or not t.numel():
        return None
    wire, code = _wire(t)
    return code if wire == t.dtype else None


def _in_place(t, code):
    """(slab, byte offset) when t (of that _core_code) lies in a storage the bridge has mapped (the
    slab pinned until the TensorHandle's request is done), else None."""
    slab = None if code is None else _shared.acquire(t)
    return None if slab is None else (slab, t.storage_offset() * t.element_size())


class TensorHandle:
    """A collective in flight on tensors. wait() copies the result into `output` once and returns it."""

    def __init__(self, handle, output, result, slabs, pinned=None):
        self._bridge = _bridge()
        self._handle = handle
        self._output = output
        self._result = result  # the slab view holding the outcome
        self._slabs = slabs
        self._pinned = pinned  # the shared storage's slab, reduced in place
        self._lock = threading.Lock()
        self._copied = False

    def done(self):
        return self._handle.done()

    def _complete(self):
        with self._lock:
            if not self._copied:
                self._copied = True
                try:
                    if self._handle.exception() is None and self._result is not None:
                        if self._output.requires_grad:  # an in-place write to a leaf autograd must not record
                            with torch.no_grad():
                                self._output.copy_(self._result)
                        else:
                            self._output.copy_(self._result)
                finally:
                    for s in self._slabs:
                        self._bridge.release(s)
                    if self._pinned is not None:
                        _shared.release(self._pinned)
        return self._output

    def wait(self):
        try:
            self._handle.wait()
        finally:
            self._complete()
        return self._output

    def then(self, fn):
        """fn(handle) runs on the bridge's thread after the result is copied (or the request failed)."""

        def done(_):
            self._complete()
            fn(self)

        self._handle.add_done_callback(done)

    def exception(self):
        return self._handle.exception()


class _RanHere(TensorHandle):
    """A request the client lane ran before returning: its result is in place already, nothing
    to copy back or release (the lane's whole point is a few microseconds a call)."""

    def __init__(self, error, output):
        self._error = error
        self._output = output

    def done(self):
        return True

    def wait(self):
        if self._error is not None:
            raise self._error
        return self._output

    def then(self, fn):
        fn(self)

    def exception(self):
        return self._error


_ELSEWHERE = object()  # _run_on_lane's answer for a request the client lane does not take
_lane_kinds = {}  # (coll, dtype, op, root, compression) -> (the lane's kind, itemsize), or None: not a core dtype


def _lane_kind(b, key):
    """_lane_kinds[key], made on first use."""
    coll, dtype, op, root, compression = key
    if coll == "allreduce":
        _check_op(op)
    wire, code = _wire_of(dtype)
    kind = None if wire != dtype else (b.lane_kind(coll, code, op, root, compression), dtype.itemsize)
    _lane_kinds[key] = kind
    return kind


def _run_on_lane(b, coll, tensor, op=None, root=None, compression=None):
    """coll run on tensor's own memory by this process, on the client lane, when the lane takes it
    (one host; a small, contiguous CPU tensor of a core dtype): None once done, or its failure;
    else _ELSEWHERE. The fast path of every small request, so it reads as little as it can: at
    4 ranks on 2 cores each microsecond here costs the peers sharing a core about two more."""
    lane = b.lane
    if lane is None or not tensor.is_cpu or not tensor.is_contiguous():
        return _ELSEWHERE
    key = (coll, tensor.dtype, op, root, compression)
    kind = _lane_kinds.get(key, _ELSEWHERE)
    if kind is _ELSEWHERE:
        kind = _lane_kind(b, key)
    if kind is None:
        return _ELSEWHERE
    count = tensor.numel()
    address = tensor.data_ptr()
    if not 0 < count * kind[1] <= lane.small_bytes or address % kind[1]:
        return _ELSEWHERE
    return b.run_here(kind[0], address, count)


def _check_op(op):
    if op not in (Sum, Average, Min, Max, Product):
        raise ValueError("unicc.torch: unknown op %r (use uc.Sum, uc.Average, uc.Min, uc.Max, uc.Product)" % (op,))
    return op


def _pinned_request(slab, tensor, submit):
    """The handle of submit() on a pinned shared slab; the pin goes once it is done (or failed to start)."""
    try:
        h = submit()
    except BaseException:
        _shared.release(slab)
        raise
    return TensorHandle(h, tensor, None, [], pinned=slab)


def _finished(error):
    """Whether _run_on_lane's answer `error` means the request ran there; raises its failure."""
    if error is _ELSEWHERE:
        return False
    if error is not None:
        raise error
    return True


def _in_place_request(coll, tensor, name=None, **fields):
    """coll on tensor's own memory: in this process when the client lane takes it, else as
    _request_elsewhere makes it. fields: submit()'s op, root, compression."""
    b = _bridge()
    if name is None:
        error = _run_on_lane(b, coll, tensor, **fields)
        if error is not _ELSEWHERE:
            return _RanHere(error, tensor)
    return _request_elsewhere(b, coll, tensor, name, fields)


def _request_elsewhere(b, coll, tensor, name, fields):
    """The handle of coll on tensor where the bridge maps its storage, else by cross-memory
    attach, else through a slab that the handle's wait() copies back from."""
    code = _core_code(tensor)
    shared = _in_place(tensor, code)
    if shared is not None:
        slab, offset = shared
        return _pinned_request(slab, tensor, lambda: b.submit(coll, slab, code, tensor.numel(), offset, name=name, **fields))
    if code is not None and name is None and b.attach is True:  # the engine fuses named ones from slabs
        return TensorHandle(b.submit_at(coll, tensor.data_ptr(), code, tensor.numel(), **fields), tensor, None, [])
    slab, v, code = _stage(tensor)
    try:
        h = b.submit(coll, slab, code, tensor.numel(), name=name, **fields)
    except BaseException:
        b.release(slab)
        raise
    return TensorHandle(h, tensor, v, [slab])


def _allreduce_fields(op, compression):
    """submit()'s fields of an allreduce, checked."""
    return {"op": _check_op(op), "compression": None if compression in (None, Compression.none) else compression}


def allreduce_async_(tensor, op=Average, name=None, compression=None):
    """Starts reducing `tensor` in place across ranks; returns a handle whose wait() gives `tensor`."""
    return _in_place_request("allreduce", tensor, name, **_allreduce_fields(op, compression))


def allreduce_async(tensor, op=Average, name=None, compression=None):
    return allreduce_async_(tensor.detach().clone(), op=op, name=name, compression=compression)


def allreduce_(tensor, op=Average, name=None, compression=None):
    b = _bridge()
    if name is None and _finished(_run_on_lane(b, "allreduce", tensor, op, None, compression)):
        return tensor  # a small tensor's whole call: no handle
    return _request_elsewhere(b, "allreduce", tensor, name, _allreduce_fields(op, compression)).wait()


def allreduce(tensor, op=Average, name=None, compression=None):
    """A new tensor: the reduction of `tensor` across ranks (Average unless `op` says otherwise)."""
    return allreduce_async(tensor, op, name, compression).wait()


def broadcast_async_(tensor, root_rank=0):
    return _in_place_request("broadcast", tensor, root=root_rank)


def broadcast_(tensor, root_rank=0):
    b = _bridge()
    if _finished(_run_on_lane(b, "broadcast", tensor, root=root_rank)):
        return tensor
    return _request_elsewhere(b, "broadcast", tensor, None, {"root": root_rank}).wait()


def broadcast(tensor, root_rank=0):
    """A new tensor holding `tensor` of rank `root_rank`."""
    return broadcast_(tensor.detach().clone(), root_rank)


def allgather_async(tensor):
    """Concatenation along dim 0 of every rank's `tensor` (all ranks pass the same shape)."""
    b = _bridge()
    src, _, code = _stage(tensor)
    n = tensor.numel()
    shape = (b.size * tensor.shape[0],) + tuple(tensor.shape[1:]) if tensor.dim() else (b.size,)
    try:
        dst, out_view, _ = _stage(tensor, shape=shape)
    except BaseException:
        b.release(src)
        raise
    output = torch.empty(shape, dtype=tensor.dtype, device=tensor.device)
    try:
        h = b.submit("allgather", src, code, n, out=dst)
    except BaseException:
        b.release(src)
        b.release(dst)
        raise
    return TensorHandle(h, output, out_view, [src, dst])


def allgather(tensor):
    return allgather_async(tensor).wait()


def barrier():
    _bridge().barrier()


def synchronize(handle):
    return handle.wait()
