"""The one-model classifier with PyTorch through @unicc/torch; rank 0 exports it to ONNX.
    unicc run -np 4 <torch venv>/bin/python examples/one-model/train_torch.py --out torch.onnx"""

import os
import time

import torch

import unicc.torch as uc
from common import BATCH, HIDDEN, LR, batches, parse, report, test_set, train_set
from unicc.torch.onnx import export_onnx

args = parse()
uc.init()
rank, size = uc.rank(), uc.size()
torch.set_num_threads(max(1, (os.cpu_count() or 1) // uc.local_size()))
x, y = (torch.from_numpy(a) for a in train_set())
torch.manual_seed(1)
model = torch.nn.Sequential(torch.nn.Linear(784, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, 10))
uc.broadcast_parameters(model.state_dict(), root_rank=0)
opt = uc.DistributedOptimizer(torch.optim.Adam(model.parameters(), lr=LR), named_parameters=model.named_parameters())
loss_fn = torch.nn.CrossEntropyLoss()
t0 = time.perf_counter()
for epoch in range(args.epochs):
    for idx in batches(epoch, rank, size):
        opt.zero_grad()
        loss_fn(model(x[idx]), y[idx]).backward()
        opt.step()
seconds = time.perf_counter() - t0
if rank == 0:
    with torch.no_grad():
        report("torch", seconds, args.epochs, size, model(torch.from_numpy(test_set()[0])).argmax(1).numpy())
    export_onnx(model, x[:BATCH], args.out)
uc.barrier()
