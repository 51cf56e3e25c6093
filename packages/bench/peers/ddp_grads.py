"""PyTorch DDP (Gloo) peer of `unicc-bench engine`: one training step's gradient exchange of a
workload (bench/workloads/*.json), done the way DDP does it in training.

Each rank holds a module whose parameters have the workload's shapes. A step is a forward that
adds up every parameter's sum, chained in registration order, and its backward: autograd then
accumulates the gradients in reverse order, as a network's backward would, and DDP's hooks
all-reduce them in its buckets (default 25 MiB) while backward runs. Per step: drop the old
gradients, barrier, t0, forward + backward (DDP waits for its allreduces before backward
returns), t1. Rank 0 prints one JSON line {"result": ...} with the median step time, and the
median of the same step under no_sync() (compute only, no exchange) for reference.

With --trace, backward replays a recorded one instead: each parameter's gradient is produced by a
node that sleeps until its layer's recorded ready time (scaled so backward lasts --compute-s),
so DDP overlaps its bucket allreduces with the sleeping "compute" just as it would with real
layers; the compute-only step then says how long the replay itself takes.

Started like torchrun's ranks by the unicc launcher. Gloo binds its store and sockets inside
the emulated hosts, so the master address is passed explicitly (--master-addr, host 0's own
address), and GLOO_SOCKET_IFNAME is set by the caller.

  ddp_grads.py --workload FILE --master-addr ADDR [--hook none|fp16] [--warmup 3] [--steps 5]
               [--trace FILE --compute-s SECONDS]"""
import argparse
import datetime
import json
import os
import sys
import time

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import fp16_compress_hook
from torch.nn.parallel import DistributedDataParallel


class Shapes(nn.Module):
    """Parameters with the workload's shapes and nothing else."""

    def __init__(self, tensors: list[dict]) -> None:
        super().__init__()
        self.params = nn.ParameterList(nn.Parameter(torch.rand(t["shape"])) for t in tensors)

    def forward(self) -> torch.Tensor:
        total = self.params[0].sum()
        for p in self.params[1:]:
            total = total + p.sum()
        return total


class Sleep(torch.autograd.Function):
    """p.sum() whose backward first sleeps until `clock[0] + at`: one replayed layer."""

    @staticmethod
    def forward(ctx, p: torch.Tensor, at: float, clock: list[float]) -> torch.Tensor:
        ctx.shape, ctx.at, ctx.clock = p.shape, at, clock
        return p.sum()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        wait = ctx.clock[0] + ctx.at - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        return grad.expand(ctx.shape), None, None


class Replay(Shapes):
    """Backward replays a trace: autograd runs the later-made nodes first, so the nodes are made
    in reverse ready order and the gradients come out in ready order, each at its time."""

    def __init__(self, tensors: list[dict], trace: list[dict], compute_s: float) -> None:
        super().__init__(tensors)
        index = {t["name"]: k for k, t in enumerate(tensors)}
        if sorted(index) != sorted(x["name"] for x in trace):
            sys.exit("ddp_grads.py: the trace does not name exactly the workload's tensors")
        last = trace[-1]["ready_s"]
        self.schedule = [(index[x["name"]], x["ready_s"] / last * compute_s) for x in reversed(trace)]
        self.clock = [0.0]

    def forward(self) -> torch.Tensor:
        total = None
        for k, at in self.schedule:
            y = Sleep.apply(self.params[k], at, self.clock)
            total = y if total is None else total + y
        return total


def median(times: list[float]) -> float:
    s = sorted(times)
    h = len(s) // 2
    return s[h] if len(s) % 2 else (s[h - 1] + s[h]) / 2


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", required=True)
    ap.add_argument("--master-addr", required=True)
    ap.add_argument("--hook", choices=["none", "fp16"], default="none")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--trace")
    ap.add_argument("--compute-s", type=float)
    args = ap.parse_args()

    os.environ["MASTER_ADDR"] = args.master_addr
    torch.set_num_threads(1)  # the ranks share the machine's cores, as unicc's do
    # A rank that hangs fails the run after two minutes instead of holding up the bench.
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=120))
    rank = dist.get_rank()
    tensors = json.load(open(args.workload))["tensors"]
    torch.manual_seed(rank)
    module = Replay(tensors, json.load(open(args.trace))["tensors"], args.compute_s) if args.trace else Shapes(tensors)
    model = DistributedDataParallel(module)
    if args.hook == "fp16":
        model.register_comm_hook(state=None, hook=fp16_compress_hook)

    def step() -> float:
        for p in model.parameters():
            p.grad = None
        dist.barrier()
        t0 = time.perf_counter()
        loss = model()
        if args.trace:
            module.clock[0] = time.perf_counter()  # the replayed backward starts now
        loss.backward()
        return time.perf_counter() - t0

    times = []
    for i in range(-args.warmup, args.steps):
        t = step()
        if i >= 0:
            times.append(t)
        if rank == 0:
            which = f"warm-up {i + args.warmup + 1}/{args.warmup}" if i < 0 else f"step {i + 1}/{args.steps}"
            what = "replay" if args.trace else "exchange"
            print(f"progress ddp gloo {what} hook={args.hook} {which}: {t:.3f} s", file=sys.stderr, flush=True)
    compute = []
    with model.no_sync():
        for _ in range(args.steps if args.trace else 3):
            compute.append(step())
    if rank == 0:
        print(json.dumps({"result": {"median_s": median(times), "times_s": times, "compute_only_s": median(compute)}}), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
