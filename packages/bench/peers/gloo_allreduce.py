"""Gloo peer of `unicc-bench`: torch.distributed all_reduce (float32 sum) on CPU tensors, timed
exactly as src/worker.ts times unicc: per size, WARMUP then ITERS x (restore input,
barrier, GAP_US of busy compute, t0, all_reduce, t1); rank 0 prints the median as one JSON line on stdout, and
"progress gloo BYTES DONE/ITERS" on stderr at most once a second.

Started like torchrun's ranks (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) by the unicc launcher.
argv: the plan, "bytes:iters:warmup:gap_us,..." (src/plan.ts)."""
import datetime
import json
import sys
import time

import torch
import torch.distributed as dist


def median(times: list[float]) -> float:
    s = sorted(times)
    h = len(s) // 2
    return s[h] if len(s) % 2 else (s[h - 1] + s[h]) / 2


def main() -> None:
    plan = [(tuple(map(int, item.split(":"))) + (0,))[:4] for item in sys.argv[1].split(",")]
    # One compute thread per rank, like the other implementations; the ranks share the cores.
    torch.set_num_threads(1)
    # A rank that hangs fails the run after a minute rather than holding up the whole bench.
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    rank, size = dist.get_rank(), dist.get_world_size()
    gen = torch.Generator().manual_seed(rank + 1)
    for nbytes, iters, warmup, gap_us in plan:
        data = torch.rand(nbytes // 4, generator=gen)
        buf = torch.empty_like(data)
        times = []
        last_report = time.monotonic()
        for i in range(-warmup, iters):
            # Summing the result again and again would overflow to inf; every run reduces the same data.
            buf.copy_(data)
            dist.barrier()
            until = time.perf_counter_ns() + gap_us * 1000
            while time.perf_counter_ns() < until:
                pass
            t0 = time.perf_counter_ns()
            dist.all_reduce(buf, op=dist.ReduceOp.SUM)
            t1 = time.perf_counter_ns()
            if i < 0:
                continue
            times.append((t1 - t0) / 1e9)
            if rank == 0 and time.monotonic() - last_report >= 1 and i + 1 < iters:
                print(f"progress gloo {nbytes} {i + 1}/{iters}", file=sys.stderr, flush=True)
                last_report = time.monotonic()
        if rank == 0:
            m = median(times)
            busbw = nbytes / m * 2 * (size - 1) / size / 1e9
            print(json.dumps({"impl": "gloo", "ranks": size, "bytes": nbytes, "iters": iters,
                              "median_s": m, "busbw_GBps": busbw}), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
