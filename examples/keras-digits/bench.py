"""Runs train.py at 1, 2 and 4 ranks (one job at a time) and prints a markdown table of steps/s,
images/s and the share of the step spent exchanging gradients:

    <venv>/bin/python examples/keras-digits/bench.py [--ranks 1,2,4] [-- <train.py options, e.g. --epochs 4>]

The first epoch (tracing, warm-up) is left out of the means.
"""

import argparse
import json
import os
import platform
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
cli = os.path.join(here, "..", "..", "packages", "core-native", "dist", "cli.js")
p = argparse.ArgumentParser()
p.add_argument("--ranks", default="1,2,4")
p.add_argument("train_args", nargs="*")
args = p.parse_args()
train_args = args.train_args or ["--epochs", "4"]


def run(np_):
    out = subprocess.run(["node", cli, "run", "-np", str(np_), sys.executable, os.path.join(here, "train.py")] + train_args,
                         stdout=subprocess.PIPE, text=True)
    sys.stderr.write(out.stdout)
    line = next((l for l in out.stdout.splitlines() if l.startswith("[0] summary ")), None)
    if out.returncode != 0 or line is None:
        sys.exit("%d ranks: exit %d, no summary" % (np_, out.returncode))
    return json.loads(line[len("[0] summary "):])


def mean(xs):
    return sum(xs) / len(xs)


rows = []
for n in [int(r) for r in args.ranks.split(",")]:
    epochs = run(n)["epochs"]
    timed = epochs[1:] or epochs
    rows.append((n, mean([e["stepsPerSecond"] for e in timed]), mean([e["imagesPerSecond"] for e in timed]),
                 mean([e["exchangeFraction"] for e in timed]), epochs[-1]["testAccuracy"]))
print("\n%d cores (%s); train.py %s; means over epochs 2..n\n" % (os.cpu_count(), platform.processor() or platform.machine(),
                                                                " ".join(train_args)))
print("| ranks | steps/s | images/s | speed-up | step (ms) | exchange share of step | test accuracy |")
print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for n, sps, ips, share, acc in rows:
    print("| %d | %.1f | %.0f | %.2fx | %.1f | %.1f%% | %.2f%% |" % (n, sps, ips, ips / rows[0][2], 1000 / sps, 100 * share, 100 * acc))
