"""Gloo peer of `unicc bench`: torch.distributed all_reduce (float32, sum) on CPU tensors, timed
exactly as the unicc worker times its own. Started by `unicc run`, which sets RANK, WORLD_SIZE,
MASTER_ADDR and MASTER_PORT. argv: sizes in bytes (comma separated), time budget per size."""
import json
import sys
import time

import torch
import torch.distributed as dist


def iters_for(nbytes: int, budget_s: float) -> int:
    return max(5, min(200, int(budget_s * 2e9 / (nbytes + 65536))))


def main() -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, size = dist.get_rank(), dist.get_world_size()
    budget = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    gen = torch.Generator().manual_seed(rank + 1)
    for nbytes in map(int, sys.argv[1].split(",")):
        buf = torch.rand(nbytes // 4, generator=gen)
        for _ in range(2):
            dist.all_reduce(buf)
        times = []
        for _ in range(iters_for(nbytes, budget)):
            dist.barrier()
            t0 = time.perf_counter()
            dist.all_reduce(buf)
            times.append(time.perf_counter() - t0)
        if rank == 0:
            times.sort()
            print(json.dumps({"impl": "gloo", "ranks": size, "bytes": nbytes, "iters": len(times),
                              "median_s": times[len(times) // 2]}), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
