"""The one-model table (markdown, on stdout) and bar chart (PNG) from run.sh's results.jsonl.
    plot.py RESULTS.jsonl OUT.png"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
names = [r["train"]["framework"] for r in rows]
acc = [100 * r["eval"]["metrics"]["accuracy"] for r in rows]
ips = [r["train"]["imagesPerSecond"] for r in rows]

print("| framework | training images/s (4 ranks) | test accuracy: onnxruntime, 4 ranks | the framework's own | test loss | eval samples/s |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for r, n, a, i in zip(rows, names, acc, ips):
    e = r["eval"]
    print("| %s | %.0f | %.2f%% | %.2f%% | %.4f | %.0f |" % (n, i, a, 100 * r["train"]["ownAccuracy"], e["metrics"]["loss"], e["samplesPerSecond"]))

fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
for ax, values, title, fmt in ((left, acc, "test accuracy (%), onnxruntime on 4 ranks", "%.2f"),
                               (right, ips, "training images/s, 4 ranks", "%.0f")):
    bars = ax.bar(names, values, color=["#4c72b0", "#dd8452", "#55a868", "#c44e52"][: len(names)])
    ax.set_title(title, fontsize=10)
    ax.bar_label(bars, [fmt % v for v in values], fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
left.set_ylim(min(acc) - 5, 100)
fig.suptitle("one digits classifier, every framework, one ONNX evaluation job", fontsize=11)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
