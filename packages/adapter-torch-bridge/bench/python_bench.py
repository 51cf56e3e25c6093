"""Bridge and training benchmarks, run on every rank by bench/run.mjs. Rank 0 prints one
`RESULT {json}` line of medians in seconds:
  latency_1k_s, allreduce_64m_s  uc.allreduce through the bridge (compare: node_bench.mjs)
  step_unicc_s                   a training step of the torch-digits model with uc.DistributedOptimizer
  step_ddp_unicc_s               the same with DDP on the "unicc" torch.distributed backend
  step_ddp_gloo_s                the same with DDP on Gloo
  resnet50_unicc_s               the ResNet-50 gradient set (161 tensors) averaged through the bridge, one request per tensor
  resnet50_gloo_s                the same set averaged by Gloo in DDP-sized (25 MiB) flat buckets
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
torch.set_num_threads(max(1, (os.cpu_count() or 1) // uc.local_size()))
steps = int(os.environ.get("BENCH_STEPS", "60"))
resnet_path = sys.argv[1] if len(sys.argv) > 1 else None


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

# The torch-digits model on random digits: per-rank batch 16 (global 64 at 4 ranks).
torch.manual_seed(0)
x, y = torch.rand(16, 784), torch.randint(0, 10, (16,))
loss_fn = nn.CrossEntropyLoss()


def model():
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))


def stepper(net, opt):
    def step():
        opt.zero_grad()
        loss_fn(net(x), y).backward()
        opt.step()
    return step


m = model()
out["step_unicc_s"] = timed(stepper(m, uc.DistributedOptimizer(torch.optim.SGD(m.parameters(), lr=0.01),
                                                               named_parameters=m.named_parameters())), steps)

grads = []
if resnet_path:
    with open(resnet_path) as f:
        grads = [torch.randn(t["numel"]) for t in json.load(f)["tensors"]]

    def exchange_unicc():
        for h in [uc.allreduce_async_(g, name="rn50.%d" % i) for i, g in reversed(list(enumerate(grads)))]:
            h.wait()

    out["resnet50_unicc_s"] = timed(exchange_unicc, 5, warmup=1)

for backend in ("unicc", "gloo"):
    # One default process group at a time: measure each backend in turn.
    dist.init_process_group(backend=backend)
    m = model()
    net = nn.parallel.DistributedDataParallel(m)
    out["step_ddp_%s_s" % backend] = timed(stepper(net, torch.optim.SGD(m.parameters(), lr=0.01)), steps)
    if backend == "gloo" and grads:
        bucket_elems = 25 * (1 << 20) // 4
        buckets, cur, n = [], [], 0
        for g in reversed(grads):
            cur.append(g)
            n += g.numel()
            if n >= bucket_elems:
                buckets.append(cur)
                cur, n = [], 0
        buckets.append(cur)
        flat = [torch.cat(b) for b in buckets]

        def exchange_gloo():
            works = [dist.all_reduce(f, async_op=True) for f in flat]
            for w, f in zip(works, flat):
                w.wait()
                f.div_(dist.get_world_size())

        out["resnet50_gloo_s"] = timed(exchange_gloo, 5, warmup=1)
    dist.destroy_process_group()

if uc.rank() == 0:
    print("RESULT " + json.dumps(out), flush=True)
