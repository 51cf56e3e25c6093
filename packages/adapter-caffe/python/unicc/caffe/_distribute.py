"""Gradient averaging through Caffe's solver callbacks, the way Caffe's own multi-GPU (NCCL) training
does it: every rank starts from rank 0's learnable blobs, and after each iteration's backward
passes, before the update, every learnable diff is replaced by its average over the ranks.

Caffe's Solver.step holds the GIL through forward and backward, so no Python thread runs while
Caffe computes. Nothing here needs one to: all of an iteration's exchange happens inside
on_gradients_ready, on the thread that called step. It copies the diffs into one shared-memory
slab, submits one named allreduce per blob (the engine in the bridge process fuses them and works
on its own threads), then waits; waiting releases the GIL, so the client's reader thread takes
the completions then. The bridge is another process, so the GIL never stalls the wire itself.
"""

import time

import numpy as np

from ._solver import init


def learnable_blobs(net):
    """(name, blob) for each learnable blob of net, once: blobs shared between layers (the same
    `param { name: ... }`) hold one data and one diff, so they are reduced once, under the first
    layer's name. Names are "<layer>#<index>", the same on every rank."""
    seen = set()
    out = []
    for layer, blobs in net.params.items():
        for j, blob in enumerate(blobs):
            key = blob.diff.__array_interface__["data"][0]
            if blob.count == 0 or key in seen:
                continue
            seen.add(key)
            out.append(("%s#%d" % (layer, j), blob))
    return out


class Distributed:
    """Averages solver's diffs across ranks every iteration (see the module's notes). compression
    "fp16" or "bf16" sends them in 16 bits (arithmetic stays fp32)."""

    def __init__(self, solver, compression=None):
        self.bridge = init()
        self.solver = solver
        self.compression = None if compression in (None, "none") else compression
        if self.compression not in (None, "fp16", "bf16"):
            raise ValueError("unicc.caffe: compression %r is not one of none, fp16, bf16" % (compression,))
        self.blobs = learnable_blobs(solver.net)
        self._slices = []
        at = 0
        for _, blob in self.blobs:
            self._slices.append(slice(at, at + blob.count))
            at += blob.count
        self._slab = self.bridge.alloc(max(at, 1) * 4)
        self._flat = np.frombuffer(self._slab.buffer, np.float32, at)
        self._started = False
        self.exchange_s = 0.0  # wall time spent in on_gradients_ready, for the benchmark
        solver.add_callback(self._on_start, self._on_gradients_ready)

    def _on_start(self):
        if self._started:
            return
        self._started = True
        # Rank 0's weights everywhere before the first forward pass (also after restore or copy_from).
        for (_, blob), s in zip(self.blobs, self._slices):
            self._flat[s] = blob.data.reshape(-1)
        self.bridge.submit("broadcast", self._slab, "f32", self._flat.size, root=0).wait()
        for (_, blob), s in zip(self.blobs, self._slices):
            blob.data[...] = self._flat[s].reshape(blob.data.shape)

    def _on_gradients_ready(self):
        t0 = time.perf_counter()
        flat = self._flat
        handles = []
        for (name, blob), s in zip(self.blobs, self._slices):
            flat[s] = blob.diff.reshape(-1)
            handles.append(self.bridge.submit("allreduce", self._slab, "f32", s.stop - s.start, offset=s.start * 4,
                                              op="average", name=name, compression=self.compression))
        for h in handles:
            h.wait()
        for (_, blob), s in zip(self.blobs, self._slices):
            blob.diff[...] = flat[s].reshape(blob.diff.shape)
        self.exchange_s += time.perf_counter() - t0


def distribute(solver, compression=None):
    """Makes solver data-parallel across the job's ranks; returns the Distributed doing it. Only rank 0
    tests, displays and snapshots (Caffe's root-solver rule; get_solver also turns them off in the
    other ranks' solver files)."""
    return Distributed(solver, compression)
