"""DistributedDataParallel over unicc, two ways: a comm hook (gradients only; DDP keeps its own
process group for setup), and a torch.distributed backend "unicc" for init_process_group, which
carries everything DDP sends, so DDP's own hooks (allreduce, fp16, PowerSGD) run over unicc too."""

import torch
import torch.distributed as dist
from torch._C._distributed_c10d import _create_work_from_future

import unicc

from ._ops import Average, Max, Min, Product, Sum, allgather_async, allreduce_async_, broadcast_async_, share_if_repeated


def _future_of(handle, value):
    """A torch Future completed with `value` (or the error) from the client's callback threads."""
    fut = torch.futures.Future()

    def done(h):
        err = h.exception()
        if err is None:
            fut.set_result(value)
        else:
            fut.set_exception(err)

    handle.then(done)
    return fut


def ddp_comm_hook(state, bucket):
    """DDP comm hook: averages the bucket's gradients through unicc.
    Use: `model.register_comm_hook(None, uc.ddp_comm_hook)` (state is unused)."""
    buf = bucket.buffer()
    share_if_repeated(buf)  # from its second step on, the bucket is reduced where DDP keeps it
    h = allreduce_async_(buf, op=Average, name="ddp.bucket.%d" % bucket.index())
    return _future_of(h, buf)


_OPS = {
    dist.ReduceOp.SUM: Sum,
    dist.ReduceOp.AVG: Average,
    dist.ReduceOp.MIN: Min,
    dist.ReduceOp.MAX: Max,
    dist.ReduceOp.PRODUCT: Product,
}


def _op(opts):
    for k, v in _OPS.items():
        if opts.reduceOp == k:
            return v
    raise ValueError("unicc backend: reduce op %s is not supported (SUM, AVG, MIN, MAX, PRODUCT)" % opts.reduceOp)


def _work(handles, value):
    fut = torch.futures.Future()
    if not handles:
        fut.set_result(value)
        return _create_work_from_future(fut)
    left = [len(handles)]
    errors = []

    def done(h):
        if h.exception() is not None:
            errors.append(h.exception())
        left[0] -= 1
        if left[0] == 0:
            if errors:
                fut.set_exception(errors[0])
            else:
                fut.set_result(value)

    for h in handles:
        h.then(done)
    return _create_work_from_future(fut)


class ProcessGroupUnicc(dist.ProcessGroup):
    """A torch.distributed process group whose collectives run on this rank's unicc bridge.
    Ranks and size come from unicc (the launcher's env), not from torch's store."""

    def __init__(self, rank, size):
        super().__init__(rank, size)
        b = unicc.init()
        if (b.rank, b.size) != (rank, size):
            raise unicc.UniccError("unicc backend: torch.distributed says rank %d of %d but unicc says rank %d of %d; "
                                   "start the job with `unicc run` and leave RANK/WORLD_SIZE as it sets them"
                                   % (rank, size, b.rank, b.size))

    def getBackendName(self):
        return "unicc"

    def allreduce(self, tensors, opts):
        op = _op(opts)
        for t in tensors:  # DDP's buckets come again every step: reduce them in place from the second
            share_if_repeated(t)
        return _work([allreduce_async_(t, op=op) for t in tensors], tensors)

    def broadcast(self, tensors, opts):
        return _work([broadcast_async_(t, opts.rootRank) for t in tensors], tensors)

    def allgather(self, output_lists, inputs, opts):
        handles = []
        for outs, t in zip(output_lists, inputs):
            h = allgather_async(t)
            chunks = list(h._output.chunk(len(outs)))

            def scatter(_, outs=outs, chunks=chunks):
                with torch.no_grad():
                    for o, c in zip(outs, chunks):
                        o.copy_(c.view(o.shape))

            h.then(scatter)
            handles.append(h)
        return _work(handles, output_lists)

    def barrier(self, opts=None):
        fut = torch.futures.Future()
        h = unicc.bridge().submit("barrier")
        h.add_done_callback(lambda x: fut.set_exception(x.exception()) if x.exception() else fut.set_result(None))
        return _create_work_from_future(fut)


def _create(store, rank, size, timeout):
    return ProcessGroupUnicc(rank, size)


if "unicc" not in dist.Backend.backend_list:
    dist.Backend.register_backend("unicc", _create, devices=["cpu", "cuda"])

__all__ = ["ddp_comm_hook", "ProcessGroupUnicc"]
