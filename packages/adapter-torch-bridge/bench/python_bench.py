"""Bridge and training benchmarks, run on every rank by bench/run.mjs. Rank 0 prints one
`RESULT {json}` line of medians in seconds (and a progress line per measure on stderr):
  latency_1k_s, allreduce_4m_s, allreduce_64m_s
                                    uc.allreduce_ of plain tensors (compare: node_bench.mjs): the
                                    small one on the client lane (one host), the others through the
                                    bridge by cross-memory attach where the bridge has it
  latency_1k_ring_s                 the small one with the lane off: through the command ring
  *_copied_s                        the same copied through a slab (attach off)
  *_shared_s                        the same on share_memory_()'d tensors (reduced in place)
  <model>_opt_s                     a training step with uc.DistributedOptimizer
  <model>_exchange_s                its named allreduces alone (the gradients already in place)
  <model>_ddp_unicc_s               the same step with DDP on the "unicc" torch.distributed backend
  <model>_ddp_gloo_s                the same with DDP on Gloo
  <model>_ddp_none_s                the same with DDP exchanging nothing (a comm hook that returns
                                    each bucket as it is): DDP's own work, the floor of any backend
  stream_Bps                         bytes per second this host's ranks load and store together
                                    (all adding 26 MB arrays at once): with <model>_ddp_none_s, the
                                    floor of a step's allreduce, whose every rank's gradients must
                                    be read once and the sum written into every rank's
  resnet50_bytes                    the ResNet-50 set's size
  <model>_local_s                   the same step with a plain optimizer: no exchange at all
  dist_<size>_<backend>_s           dist.all_reduce of one tensor of <size> (1k ... 256m) again and
                                    again, on backend "unicc" and on Gloo
for <model> = digits (the torch-digits MLP on a random batch of 16 per rank) and, given
--workload FILE, resnet50: parameters of ResNet-50's 161 shapes (25.6 M values) whose forward is
cheap, so that the step is the gradient exchange (plus an SGD update).

  python_bench.py [--workload FILE] [--warmup N] [--master-addr ADDR]

--warmup: untimed steps before each model's timed ones (default 3). --master-addr: where rank 0
hosts torch.distributed's store, for emulated hosts, whose ranks cannot bind the launcher's
MASTER_ADDR (GLOO_SOCKET_IFNAME is then set by the caller).
"""

import argparse
import datetime
import json
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.nn as nn

import unicc
import unicc.torch as uc

ap = argparse.ArgumentParser()
ap.add_argument("--workload")
ap.add_argument("--warmup", type=int, default=3)
ap.add_argument("--master-addr")
args = ap.parse_args()
if args.master_addr:
    os.environ["MASTER_ADDR"] = args.master_addr
# A torch.distributed wait (store, Gloo) that makes no progress fails the run instead of hanging it.
TIMEOUT = datetime.timedelta(seconds=120)

uc.init()
# Ranks of one host share its cores, and each bridge needs one to answer promptly: an intra-op
# thread pool that spins on every core starves them (BENCH_THREADS overrides).
cores = os.cpu_count() or 1
torch.set_num_threads(int(os.environ.get("BENCH_THREADS") or max(1, (cores - uc.local_size()) // uc.local_size())))


def median(xs):
    return sorted(xs)[len(xs) // 2]


out = {}


def measure(key, fn, iters, warmup):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(iters):
        uc.barrier()
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    out[key] = median(ts)
    if uc.rank() == 0:
        print("progress %s: %.2f ms (median of %d)" % (key, out[key] * 1e3, iters), file=sys.stderr, flush=True)


bridge = unicc.bridge()
attach = bridge.attach
if uc.rank() == 0 and attach is not True:
    print("progress: the bridge refused cross-memory attach (%s): the plain rows are copies too" % attach, file=sys.stderr, flush=True)
lane = bridge.lane
if uc.rank() == 0 and lane is None:
    print("progress: no client lane (%s): small plain tensors go through the bridge" % bridge.lane_why, file=sys.stderr, flush=True)
# Plain tensors as they go by default (small ones on the client lane, in this process; the rest by
# cross-memory attach where the bridge has it); then with the lane off (every rank at once): small
# ones through the command ring, plain tensors copied through a slab (attach switched off on this
# client too), share_memory_()'d ones in place.
for tail, shared, attached, laned in (("_s", False, attach, True), ("_ring_s", False, attach, False),
                                      ("_copied_s", False, "off for this measure", False), ("_shared_s", True, attach, False)):
    bridge.attach, bridge.lane = attached, lane if laned else None
    for key, elements, iters, warmup in (("latency_1k", 256, 500, 20), ("allreduce_4m", 1 << 20, 50, 5),
                                         ("allreduce_64m", 16 << 20, 10, 2)):
        if tail == "_ring_s" and key != "latency_1k":
            continue  # the lane takes small requests only: the others are the "_s" measure again
        t = torch.ones(elements)
        if shared:
            t.share_memory_()
        measure(key + tail, lambda: uc.allreduce_(t, op=uc.Sum), iters, warmup)
        del t
bridge.attach, bridge.lane = attach, lane


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
# The ResNet-50 set first, so that the engine's tuner (it tunes during the first named steps)
# measures its candidates on that set, not on the digits model's small gradients.
models = {}
if args.workload:
    with open(args.workload) as f:
        shapes = [t["shape"] for t in json.load(f)["tensors"]]
    models["resnet50"] = (lambda: Shapes(shapes), lambda net: net(torch.tensor(1.0)), 8)
models["digits"] = (lambda: nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10)),
                    lambda net: loss_fn(net(digits_batch[0]), digits_batch[1]), 60)


def stepper(net, opt, loss):
    def step():
        opt.zero_grad()
        loss(net).backward()
        opt.step()
    return step


def exchanger(net, opt):
    """The optimizer's named allreduces alone: its hook for every gradient in backward's order,
    with no backward (compare: the engine worker's exchange of the same set from Node)."""
    params = list(net.parameters())

    def exchange():
        for p in reversed(params):
            opt._unicc_hook(p)
        opt.synchronize()
    return exchange


for name, (make, loss, iters) in models.items():
    torch.manual_seed(1)
    m = make()
    opt = uc.DistributedOptimizer(torch.optim.SGD(m.parameters(), lr=0.01), named_parameters=m.named_parameters())
    measure("%s_opt_s" % name, stepper(m, opt, loss), iters, args.warmup)
    measure("%s_exchange_s" % name, exchanger(m, opt), iters, args.warmup)
    torch.manual_seed(1)
    m = make()
    measure("%s_local_s" % name, stepper(m, torch.optim.SGD(m.parameters(), lr=0.01), loss), iters, args.warmup)

dist.init_process_group(backend="unicc", timeout=TIMEOUT)
groups = {"unicc": dist.group.WORLD, "gloo": dist.new_group(backend="gloo", timeout=TIMEOUT)}
for size, elements, iters in (("1k", 256, 200), ("64k", 16 << 10, 100), ("4m", 1 << 20, 30), ("64m", 16 << 20, 8),
                              ("256m", 64 << 20, 4)):
    for backend, group in groups.items():
        t = torch.ones(elements)
        measure("dist_%s_%s_s" % (size, backend), lambda: dist.all_reduce(t, group=group), iters, 2)
        del t
for backend, group in groups.items():
    for name, (make, loss, iters) in models.items():
        torch.manual_seed(1)
        m = make()
        net = nn.parallel.DistributedDataParallel(m, process_group=group)
        measure("%s_ddp_%s_s" % (name, backend), stepper(net, torch.optim.SGD(m.parameters(), lr=0.01), loss), iters, args.warmup)


def no_exchange(state, bucket):
    done = torch.futures.Future()
    done.set_result(bucket.buffer())
    return done


def streaming_rate(elements=6_500_000, adds=10, repeats=5):
    a, b, c = torch.rand(elements), torch.rand(elements), torch.empty(elements)
    walls = []
    for _ in range(repeats):
        uc.barrier()
        t0 = time.perf_counter()
        for _ in range(adds):
            torch.add(a, b, out=c)
        uc.barrier()
        walls.append(time.perf_counter() - t0)
    return uc.local_size() * adds * 3 * c.nbytes / median(walls)


out["stream_Bps"] = streaming_rate()
if args.workload:
    out["resnet50_bytes"] = 4 * sum(p.numel() for p in Shapes(shapes).parameters())
for name, (make, loss, iters) in models.items():
    torch.manual_seed(1)
    m = make()
    net = nn.parallel.DistributedDataParallel(m)
    net.register_comm_hook(None, no_exchange)
    measure("%s_ddp_none_s" % name, stepper(net, torch.optim.SGD(m.parameters(), lr=0.01), loss), iters, args.warmup)
dist.destroy_process_group()

if uc.rank() == 0:
    print("RESULT " + json.dumps(out), flush=True)
