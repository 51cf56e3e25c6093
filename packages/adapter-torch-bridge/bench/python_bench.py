"""Bridge and training benchmarks, run on every rank by bench/run.mjs. Rank 0 prints one
`RESULT {json}` line of medians in seconds:
  latency_1k_s, allreduce_64m_s     uc.allreduce through the bridge (compare: node_bench.mjs)
  <model>_opt_s                     a training step with uc.DistributedOptimizer
  <model>_ddp_unicc_s               the same with DDP on the "unicc" torch.distributed backend
  <model>_ddp_gloo_s                the same with DDP on Gloo
for <model> = digits (the torch-digits MLP on a random batch of 16 per rank) and, given the
workload file as argv[1], resnet50: parameters of ResNet-50's 161 shapes (25.6 M values) whose
forward is cheap, so that the step is the gradient exchange (plus an SGD update).
"""

import json
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.nn as nn

import unicc.torch as uc

uc.init()
# Ranks of one host share its cores, and each bridge needs one to answer promptly: an intra-op
# thread pool that spins on every core starves them (BENCH_THREADS overrides).
cores = os.cpu_count() or 1
torch.set_num_threads(int(os.environ.get("BENCH_THREADS") or max(1, (cores - uc.local_size()) // uc.local_size())))


def median(xs):
    return sorted(xs)[len(xs) // 2]


def timed(fn, iters, warmup=3):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(iters):
        uc.barrier()
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return median(ts)


out = {}
small = torch.ones(256)  # 1 KiB
big = torch.ones(16 << 20)  # 64 MiB
out["latency_1k_s"] = timed(lambda: uc.allreduce_(small, op=uc.Sum), 500, warmup=20)
out["allreduce_64m_s"] = timed(lambda: uc.allreduce_(big, op=uc.Sum), 10, warmup=2)
del big


class Shapes(nn.Module):
    """Parameters of the given shapes; the loss touches each once, so backward yields every gradient."""

    def __init__(self, shapes):
        super().__init__()
        self.ps = nn.ParameterList([nn.Parameter(torch.randn(s) * 0.01) for s in shapes])

    def forward(self, x):
        return sum((p * x).sum() for p in self.ps)


loss_fn = nn.CrossEntropyLoss()
torch.manual_seed(0)
digits_batch = (torch.rand(16, 784), torch.randint(0, 10, (16,)))
models = {"digits": (lambda: nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10)),
                     lambda net: loss_fn(net(digits_batch[0]), digits_batch[1]), 60)}
if len(sys.argv) > 1:
    with open(sys.argv[1]) as f:
        shapes = [t["shape"] for t in json.load(f)["tensors"]]
    models["resnet50"] = (lambda: Shapes(shapes), lambda net: net(torch.tensor(1.0)), 8)


def stepper(net, opt, loss):
    def step():
        opt.zero_grad()
        loss(net).backward()
        opt.step()
    return step


for name, (make, loss, iters) in models.items():
    torch.manual_seed(1)
    m = make()
    opt = uc.DistributedOptimizer(torch.optim.SGD(m.parameters(), lr=0.01), named_parameters=m.named_parameters())
    out["%s_opt_s" % name] = timed(stepper(m, opt, loss), iters)

dist.init_process_group(backend="unicc")
groups = {"unicc": dist.group.WORLD, "gloo": dist.new_group(backend="gloo")}
for backend, group in groups.items():
    for name, (make, loss, iters) in models.items():
        torch.manual_seed(1)
        m = make()
        net = nn.parallel.DistributedDataParallel(m, process_group=group)
        out["%s_ddp_%s_s" % (name, backend)] = timed(stepper(net, torch.optim.SGD(m.parameters(), lr=0.01), loss), iters)
dist.destroy_process_group()

if uc.rank() == 0:
    print("RESULT " + json.dumps(out), flush=True)
