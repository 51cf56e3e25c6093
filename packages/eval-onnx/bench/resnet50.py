"""ResNet-50's shape (torchvision's layout: bottlenecks [3, 4, 6, 3], 25,557,032 parameters) built
here, since torchvision is not in the torch venv, with random weights, exported to ONNX by
unicc.torch.onnx.export_onnx, plus N random 3x224x224 images with labels.
    resnet50.py OUT_DIR [N]  ->  resnet50.onnx, images.npy, labels.npy"""

import os
import sys

import numpy as np
import torch
from torch import nn

from unicc.torch.onnx import export_onnx


def conv_bn(cin, cout, k, stride=1):
    return [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout)]


class Bottleneck(nn.Module):
    def __init__(self, cin, width, stride):
        super().__init__()
        cout = width * 4
        self.body = nn.Sequential(*conv_bn(cin, width, 1), nn.ReLU(), *conv_bn(width, width, 3, stride), nn.ReLU(),
                                  *conv_bn(width, cout, 1))
        self.skip = nn.Sequential(*conv_bn(cin, cout, 1, stride)) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x):
        return torch.relu(self.body(x) + self.skip(x))


def resnet50():
    layers, cin = [*conv_bn(3, 64, 7, 2), nn.ReLU(), nn.MaxPool2d(3, 2, 1)], 64
    for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for b in range(blocks):
            layers.append(Bottleneck(cin, width, stride if b == 0 else 1))
            cin = width * 4
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2048, 1000))


out, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 64
torch.manual_seed(0)
model = resnet50()
assert sum(p.numel() for p in model.parameters()) == 25_557_032
export_onnx(model, torch.rand(2, 3, 224, 224), os.path.join(out, "resnet50.onnx"))
rng = np.random.default_rng(0)
np.save(os.path.join(out, "images.npy"), rng.random((n, 3, 224, 224), dtype=np.float32))
np.save(os.path.join(out, "labels.npy"), rng.integers(0, 1000, n))
