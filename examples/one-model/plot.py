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
# Caffe's row carries scoredBy "pycaffe" (no ONNX converter); unicc-eval's results have no such field.
pycaffe = [r["eval"].get("scoredBy") == "pycaffe" for r in rows]

print("| framework | training images/s (4 ranks) | test accuracy, 4 ranks | scored by | the framework's own | test loss | eval samples/s |")
print("| --- | ---: | ---: | --- | ---: | ---: | ---: |")
for r, n, a, i, pc in zip(rows, names, acc, ips, pycaffe):
    e = r["eval"]
    print("| %s | %.0f | %.2f%% | %s | %.2f%% | %.4f | %.0f |" % (n, i, a, "pycaffe¹" if pc else "onnxruntime", 100 * r["train"]["ownAccuracy"],
                                                             e["metrics"]["loss"], e["samplesPerSecond"]))
if any(pycaffe):
    print("\n¹ Caffe has no maintained ONNX converter: its weights are scored by pycaffe on 4 ranks"
          " (`unicc.caffe.evaluate`), the other rows' ONNX exports by the one onnxruntime job (`unicc-eval`) on 4 ranks.")

fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
colors = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3"]
for ax, values, title, fmt in ((left, acc, "test accuracy (%), 4 ranks", "%.2f"),
                               (right, ips, "training images/s, 4 ranks", "%.0f")):
    bars = ax.bar(names, values, color=colors[: len(names)])
    for bar, pc in zip(bars, pycaffe):
        if pc and ax is left:
            bar.set_hatch("//")
    ax.set_title(title, fontsize=10)
    ax.bar_label(bars, [fmt % v for v in values], fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
left.set_ylim(min(acc) - 5, 100)
if any(pycaffe):
    left.text(0.0, -0.16, "hatched: scored by pycaffe (no ONNX converter for Caffe); others: onnxruntime",
              transform=left.transAxes, fontsize=7.5, va="top")
fig.suptitle("one digits classifier, every framework, trained and scored on 4 ranks", fontsize=11)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
