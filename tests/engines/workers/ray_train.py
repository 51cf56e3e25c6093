"""Driver of the Ray test: a TorchTrainer on unicc (UniccConfig) with N workers. Each worker
all-reduces seeded random tensors and takes one DDP step on its shard of a seeded batch, and
compares both with references it computes itself; it writes what it found to OUT/rankR.json.
argv: RAY_ADDRESS OUT SEED WORKERS"""

import json
import sys

import ray
from ray.train import RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from unicc.torch.ray import UniccConfig


def train_fn(config):
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    import unicc

    torch.set_num_threads(1)
    rank, size, seed = dist.get_rank(), dist.get_world_size(), config["seed"]
    draw = lambda s: torch.randn(1000, generator=torch.Generator().manual_seed(s), dtype=torch.float64)  # noqa: E731
    x = draw(seed + rank)
    dist.all_reduce(x)
    allreduce_diff = (x - sum(draw(seed + r) for r in range(size))).abs().max().item()

    # One step of DDP on this worker's shard equals one step of one process on the whole batch.
    g = torch.Generator().manual_seed(seed)
    X, Y = torch.randn(8 * size, 5, generator=g), torch.randn(8 * size, 3, generator=g)
    torch.manual_seed(seed)
    ref = torch.nn.Linear(5, 3)
    model = DDP(torch.nn.Linear(5, 3))
    model.module.load_state_dict(ref.state_dict())
    for net, xs, ys in ((ref, X, Y), (model, X[8 * rank:8 * rank + 8], Y[8 * rank:8 * rank + 8])):
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        torch.nn.functional.mse_loss(net(xs), ys).backward()
        opt.step()
    step_diff = max((a - b).abs().max().item() for a, b in zip(ref.parameters(), model.module.parameters()))
    with open("%s/rank%d.json" % (config["out"], rank), "w") as f:
        json.dump({"rank": rank, "size": size, "backend": dist.get_backend(), "unicc_rank": unicc.bridge().rank,
                   "unicc_size": unicc.bridge().size, "allreduce_diff": allreduce_diff, "step_diff": step_diff}, f)


def main():
    address, out, seed, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    ray.init(address=address, _node_ip_address=address.split(":")[0], log_to_driver=True)
    TorchTrainer(
        train_fn,
        train_loop_config={"seed": seed, "out": out},
        scaling_config=ScalingConfig(num_workers=workers, resources_per_worker={"CPU": 1}),
        torch_config=UniccConfig(),
        run_config=RunConfig(storage_path=out, name="unicc-ray-test"),
    ).fit()
    print("FIT DONE")


if __name__ == "__main__":
    main()
