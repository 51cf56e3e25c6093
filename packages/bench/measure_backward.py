"""Measures when each ResNet-50 gradient becomes ready during one backward pass on this machine,
for the overlap part of `unicc-bench engine` (which replays these times, scaled).

  .venv/bin/python measure_backward.py [--batch 8] [--image 224] [--repeats 3] \
      [--out bench/workloads/resnet50-backward.json]

The model is defined here (torchvision is not needed) with torchvision's parameter names, and is
checked against bench/workloads/resnet50.json so the trace and the exchanged tensors match.
Ready times come from post-accumulate-grad hooks, relative to the start of backward; the median
over the repeats (after one warm-up pass) is written, in ready order."""
import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import time

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride), 1x1 expand by 4, plus the shortcut."""

    def __init__(self, inplanes: int, planes: int, stride: int) -> None:
        super().__init__()
        out = planes * 4
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet50(nn.Module):
    def __init__(self, classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        inplanes = 64
        for i, (planes, blocks, stride) in enumerate([(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]):
            layer = []
            for b in range(blocks):
                layer.append(Bottleneck(inplanes, planes, stride if b == 0 else 1))
                inplanes = planes * 4
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2048, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--image", type=int, default=224)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workload", default=os.path.join(HERE, "workloads/resnet50.json"))
    ap.add_argument("--out", default=os.path.join(HERE, "workloads/resnet50-backward.json"))
    args = ap.parse_args()

    torch.manual_seed(0)
    model = ResNet50()
    params = list(model.named_parameters())
    workload = json.load(open(args.workload))["tensors"]
    ours = [(n, list(p.shape)) for n, p in params]
    theirs = [(t["name"], t["shape"]) for t in workload]
    if ours != theirs:
        sys.exit(f"measure_backward.py: the model's parameters differ from {args.workload}; first difference: "
                 f"{next((a, b) for a, b in zip(ours + [None] * 999, theirs + [None] * 999) if a != b)}")

    ready: dict[str, float] = {}
    t_start = [0.0]
    for name, p in params:
        p.register_post_accumulate_grad_hook(lambda _p, name=name: ready.__setitem__(name, time.perf_counter() - t_start[0]))

    x = torch.randn(args.batch, 3, args.image, args.image)
    target = torch.randint(0, 1000, (args.batch,))
    loss_fn = nn.CrossEntropyLoss()
    runs, forwards, backwards = [], [], []
    for rep in range(args.repeats + 1):
        model.zero_grad(set_to_none=True)
        ready.clear()
        t0 = time.perf_counter()
        loss = loss_fn(model(x), target)
        t_start[0] = time.perf_counter()
        loss.backward()
        t1 = time.perf_counter()
        if len(ready) != len(params):
            sys.exit(f"measure_backward.py: only {len(ready)} of {len(params)} gradients were reported")
        if rep == 0:
            continue  # warm-up: allocator and kernels
        runs.append(dict(ready))
        forwards.append(t_start[0] - t0)
        backwards.append(t1 - t_start[0])
        print(f"repeat {rep}: forward {forwards[-1]:.3f} s, backward {backwards[-1]:.3f} s", file=sys.stderr)

    times = {name: statistics.median(r[name] for r in runs) for name, _ in params}
    order = sorted(times, key=lambda n: times[n])
    result = {
        "model": "resnet50",
        "command": ".venv/bin/python " + " ".join(shlex.quote(a) for a in ["measure_backward.py", *sys.argv[1:]]),
        "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "batch": args.batch,
        "image": args.image,
        "repeats": args.repeats,
        "forward_s": statistics.median(forwards),
        "backward_s": statistics.median(backwards),
        "note": "ready_s: median over the repeats of when each parameter's gradient was accumulated, "
                "seconds after loss.backward() began; listed in ready order",
        "tensors": [{"name": n, "ready_s": round(times[n], 6)} for n in order],
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(f"wrote {args.out}: backward {result['backward_s']:.3f} s, forward {result['forward_s']:.3f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
