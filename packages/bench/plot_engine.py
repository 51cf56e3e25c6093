"""Plots `unicc-bench engine`'s step times: unicc beside DDP/Gloo with the link-bound limits, and
the ablation (each optimisation off in turn). argv: engine.json, output .png"""
import json
import sys

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    report = json.load(open(sys.argv[1]))
    step = {r["id"]: r.get("median_s") for r in report["runs"] if r["ok"]}
    limit = report["summary"]["link_limit_fp32_s"]
    ablation = list(dict.fromkeys(r["id"].split("-no-", 1)[1] for r in report["runs"] if "-no-" in r["id"]))
    fig, axes = plt.subplots(1, 2 if ablation else 1, figsize=(12 if ablation else 6, 4.5), squeeze=False)

    ax = axes[0][0]
    for x, prec in enumerate(["fp32", "fp16"]):
        for dx, (impl, colour) in zip((-0.2, 0.2), (("unicc", "tab:red"), ("gloo", "tab:blue"))):
            v = step.get(f"{impl}-{prec}")
            if v is not None:
                ax.bar(x + dx, v, 0.4, color=colour, label=impl if x == 0 else None)
        bound = limit if prec == "fp32" else limit / 2
        ax.hlines(bound, x - 0.45, x + 0.45, colors="k", linestyles="--", label="link limit" if x == 0 else None)
    ax.set_xticks([0, 1], ["fp32", "fp16 (DDP: fp16_compress_hook)"])
    ax.set_ylabel("step time (s), median")
    net = report["network"]
    ax.set_title(f"{report['workload']['tensors']} tensors, {net['hosts']} hosts x {net['ranks_per_host']} ranks, "
                 f"{net['rate_mbit']} Mbit/s", fontsize=10)
    ax.legend()

    if ablation:
        ax = axes[0][1]
        names = ["nothing", *ablation]
        for dx, (prec, colour) in zip((-0.2, 0.2), (("fp32", "tab:red"), ("fp16", "tab:orange"))):
            values = [step.get(f"unicc-{prec}" if n == "nothing" else f"unicc-{prec}-no-{n}") or 0 for n in names]
            ax.bar([i + dx for i in range(len(names))], values, 0.4, color=colour, label=f"unicc {prec}")
        ax.set_xticks(range(len(names)), [n.replace("-", " ") for n in names], rotation=15)
        ax.set_ylabel("step time (s), median")
        ax.set_title("ablation: one optimisation turned off", fontsize=10)
        ax.legend()

    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=110)


if __name__ == "__main__":
    main()
