# One training step on N ranks with batch b each against one step of plain torch on one process
# with the whole batch N*b (computed here, without unicc). Modes:
#   opt+hook: uc.DistributedOptimizer, then DDP (gloo process group) with uc.ddp_comm_hook
#   pg:       dist.init_process_group(backend="unicc") and DDP unchanged: plain and with its fp16 hook
#             against the 1-process reference, with its PowerSGD hook against the same over Gloo
import copy
import sys

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook as powerSGD
from torch.nn.parallel import DistributedDataParallel as DDP

import unicc.torch as uc

mode, seed, b = sys.argv[1], int(sys.argv[2]), 8
torch.manual_seed(seed)
template = nn.Sequential(nn.Linear(20, 32), nn.Tanh(), nn.Linear(32, 10))
uc.init()
r, n = uc.rank(), uc.size()
g = torch.Generator().manual_seed(seed + 1)
X = torch.randn(n * b, 20, generator=g)
Y = torch.randint(0, 10, (n * b,), generator=g)
mine = slice(r * b, (r + 1) * b)
loss_fn = nn.CrossEntropyLoss()


def reference(steps=1):
    m = copy.deepcopy(template)
    opt = torch.optim.SGD(m.parameters(), lr=0.5, momentum=0.9)
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(m(X), Y).backward()
        opt.step()
    return m


def rel_diff(a, b):
    return max(((p - q).norm() / q.norm()).item() for p, q in zip(a.parameters(), b.parameters()))


def report(what, model, tol, steps=1):
    d = rel_diff(model, reference(steps))
    print("DIFF %s %.3e" % (what, d), flush=True)
    if d > tol:
        raise SystemExit("%s differs from the 1-process reference by %.3e (limit %.0e)" % (what, d, tol))


def ddp_step(model):
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    loss_fn(model(X[mine]), Y[mine]).backward()
    opt.step()
    return model.module


if mode == "opt+hook":
    m = copy.deepcopy(template)
    opt = uc.DistributedOptimizer(torch.optim.SGD(m.parameters(), lr=0.5, momentum=0.9), named_parameters=m.named_parameters())
    # Step 1 reduces the gradients where backward wrote them (shared memory); model.zero_grad() then
    # drops those tensors, so step 2 takes the copying path.
    loss_fn(m(X[mine]), Y[mine]).backward()
    slab = opt._unicc_slab.buffer
    in_slab = [p.grad.untyped_storage().data_ptr() == torch.frombuffer(slab, dtype=torch.uint8).data_ptr() for p in m.parameters()]
    assert all(in_slab), "gradients are not in the shared slab: %s" % in_slab
    opt.step()
    m.zero_grad()
    loss_fn(m(X[mine]), Y[mine]).backward()
    opt.step()
    report("DistributedOptimizer (shared grads, then copied grads)", m, 1e-5, steps=2)

    dist.init_process_group(backend="gloo")
    model = DDP(copy.deepcopy(template))
    model.register_comm_hook(None, uc.ddp_comm_hook)
    report("ddp_comm_hook", ddp_step(model), 1e-5)
else:
    dist.init_process_group(backend="unicc")
    assert dist.get_backend() == "unicc" and dist.get_rank() == r and dist.get_world_size() == n
    report("DDP(backend=unicc)", ddp_step(DDP(copy.deepcopy(template))), 1e-5)
    model = DDP(copy.deepcopy(template))
    model.register_comm_hook(dist.group.WORLD, default_hooks.fp16_compress_hook)
    # fp16 on the wire rounds each gradient to 11 bits: equal to the reference within that precision.
    report("DDP(backend=unicc)+fp16_compress_hook", ddp_step(model), 1e-2)

    # PowerSGD is lossy by design, so its reference is the same hook over Gloo, step for step.
    def power_sgd(group):
        model = DDP(copy.deepcopy(template), process_group=group)
        model.register_comm_hook(powerSGD.PowerSGDState(process_group=group, matrix_approximation_rank=1,
                                                        start_powerSGD_iter=2), powerSGD.powerSGD_hook)
        opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
        for _ in range(4):  # two plain allreduce steps, then two compressed ones
            opt.zero_grad()
            loss_fn(model(X[mine]), Y[mine]).backward()
            opt.step()
        return model.module

    gloo = dist.new_group(backend="gloo")
    d = rel_diff(power_sgd(dist.group.WORLD), power_sgd(gloo))
    dist.barrier(group=gloo)  # nobody tears Gloo down while a peer still uses it
    dist.destroy_process_group(gloo)
    print("DIFF DDP(backend=unicc)+powerSGD_hook vs the same over Gloo %.3e" % d, flush=True)
    if d > 1e-5:
        raise SystemExit("PowerSGD over unicc differs from PowerSGD over Gloo by %.3e" % d)
dist.destroy_process_group()
print("OK", mode, flush=True)
