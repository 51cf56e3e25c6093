"""Plots `unicc-bench`'s bus bandwidth by message size: one line per implementation and rank count
(colour: implementation, dash: rank count), log2 x axis. argv: bench.json, output .png"""
import json
import sys

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402

COLOURS = {"unicc": "tab:red", "unicc-sync": "tab:orange", "gloo": "tab:blue", "mpi": "tab:green"}
DASHES = ["-", "--", ":", "-."]


def size_label(nbytes: int) -> str:
    for unit, f in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if nbytes >= f and nbytes % f == 0:
            return f"{nbytes // f}{unit}"
    return str(nbytes)


def main() -> None:
    with open(sys.argv[1]) as f:
        report = json.load(f)
    rows = report["rows"]
    rank_counts = sorted({r["ranks"] for r in rows})
    sizes = sorted({r["bytes"] for r in rows})
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for impl, colour in COLOURS.items():
        for i, n in enumerate(rank_counts):
            pts = sorted((r["bytes"], r["busbw_GBps"]) for r in rows if r["impl"] == impl and r["ranks"] == n)
            if pts:
                ax.plot(*zip(*pts), DASHES[i % len(DASHES)], marker="o", markersize=3, color=colour,
                        label=f"{impl}, {n} ranks")
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [size_label(s) for s in sizes])
    ax.set_xlabel("allreduce size (bytes, float32 sum)")
    ax.set_ylabel("bus bandwidth (GB/s)")
    ax.set_title(f"allreduce bus bandwidth on one host ({report['host']['cpus']} cpus)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=110)


if __name__ == "__main__":
    main()
