"""unicc for PyTorch, Horovod-style:

    import unicc.torch as uc
    uc.init()
    uc.broadcast_parameters(model.state_dict(), root_rank=0)
    opt = uc.DistributedOptimizer(opt, named_parameters=model.named_parameters())

or with DDP: `model.register_comm_hook(None, uc.ddp_comm_hook)`, or
`dist.init_process_group(backend="unicc")` (registered on import) with DDP unchanged.
"""

import io

import torch

import unicc
from unicc import BridgeError, UniccError, local_rank, local_size, rank, shutdown, size  # noqa: F401

from ._ops import (  # noqa: F401
    Average,
    Compression,
    Max,
    Min,
    Product,
    Sum,
    TensorHandle,
    allgather,
    allgather_async,
    allreduce,
    allreduce_,
    allreduce_async,
    allreduce_async_,
    barrier,
    broadcast,
    broadcast_,
    broadcast_async_,
    synchronize,
)
from .ddp import ProcessGroupUnicc, ddp_comm_hook  # noqa: F401
from .optimizer import DistributedOptimizer  # noqa: F401


def init():
    """Starts this rank's bridge (from the environment `unicc run` sets); safe to call again."""
    unicc.init()


def broadcast_parameters(params, root_rank=0):
    """Overwrites every tensor of a state_dict (or of named_parameters()) with rank root_rank's, in place."""
    items = params.items() if hasattr(params, "items") else params
    handles = [broadcast_async_(t.data if isinstance(t, torch.nn.Parameter) else t, root_rank)
               for _, t in items if torch.is_tensor(t)]
    for h in handles:
        h.wait()


def broadcast_object(obj, root_rank=0):
    """Rank root_rank's obj (anything torch.save can write) on every rank."""
    buf = io.BytesIO()
    if rank() == root_rank:
        torch.save(obj, buf)
    data = torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8) if buf.tell() else torch.empty(0, dtype=torch.uint8)
    length = broadcast_(torch.tensor([data.numel()], dtype=torch.int64), root_rank)
    payload = torch.zeros(int(length.item()), dtype=torch.uint8)
    if rank() == root_rank:
        payload.copy_(data)
    broadcast_(payload, root_rank)
    if rank() == root_rank:
        return obj
    return torch.load(io.BytesIO(payload.numpy().tobytes()), weights_only=False)


def broadcast_optimizer_state(optimizer, root_rank=0):
    """Makes every rank's optimizer state (moments, step counts, hyperparameters) equal to root_rank's."""
    state = broadcast_object(optimizer.state_dict(), root_rank)
    if rank() != root_rank:
        optimizer.load_state_dict(state)


__all__ = [
    "init", "shutdown", "rank", "size", "local_rank", "local_size",
    "allreduce", "allreduce_", "allreduce_async", "allreduce_async_", "broadcast", "broadcast_", "broadcast_async_",
    "allgather", "allgather_async", "barrier", "synchronize", "TensorHandle",
    "broadcast_parameters", "broadcast_object", "broadcast_optimizer_state",
    "DistributedOptimizer", "ddp_comm_hook", "ProcessGroupUnicc",
    "Sum", "Average", "Min", "Max", "Product", "Compression", "UniccError", "BridgeError",
]
