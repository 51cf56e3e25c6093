"""Plots bus bandwidth by message size from `unicc bench`'s JSON: one line per implementation and
rank count. argv: bench.json, output .png"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    data = json.load(open(sys.argv[1]))
    rows = data["rows"]
    fig, ax = plt.subplots(figsize=(8, 5))
    colors = {"unicc": "tab:red", "gloo": "tab:blue", "mpi": "tab:green"}
    for impl in colors:
        for ranks, style in [(2, "-"), (4, "--"), (8, ":")]:
            pts = sorted((r["bytes"], r["bytes"] / r["median_s"] * 2 * (ranks - 1) / ranks / 1e9)
                         for r in rows if r["impl"] == impl and r["ranks"] == ranks)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker="o", ms=3,
                        color=colors[impl], label=f"{impl}, {ranks} ranks")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("message size (bytes)")
    ax.set_ylabel("bus bandwidth (GB/s)")
    ax.set_title(f"allreduce float32 sum on one host ({data['cpus']} cores)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=110)


if __name__ == "__main__":
    main()
