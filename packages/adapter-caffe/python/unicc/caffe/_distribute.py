"""Gradient averaging through Caffe's solver callbacks, the way Caffe's own multi-GPU (NCCL) training
does it: every rank starts from rank 0's learnable blobs, and after each iteration's backward
passes, before the update, every learnable diff is replaced by its average over the ranks.

Caffe's Solver.step holds the GIL through forward and backward, so no Python thread runs while
Caffe computes. Nothing here needs one to: all of an iteration's exchange happens inside
on_gradients_ready, on the thread that called step. It copies the diffs into one shared-memory
slab, submits one named allreduce per blob (the engine in the bridge process fuses them and works
on its own threads), then waits; waiting releases the GIL, so the client's reader thread takes
the completions then. The bridge is another process, so the GIL never stalls the wire itself.

With overlap, the copy and submit of each blob move into pycaffe's per-layer hook
(Net.after_backward, called on the same thread after each layer's backward with its index): the
bridge's engine then reduces a blob while Caffe computes the layers below it, and
on_gradients_ready submits nothing, only waits for what is left.
"""

import time

import numpy as np

from ._solver import init


def learnable_blobs(net):
    """(name, blob, final_after) for each learnable blob of net, once: blobs shared between layers (the same
    `param { name: ... }`) hold one data and one diff, so they are reduced once, under the first
    layer's name. Names are "<layer>#<index>", the same on every rank. `final_after` is the index of
    the first layer using the blob: backward runs from the last layer down, so its diff is final once
    that layer's backward is done."""
    index = {name: i for i, name in enumerate(net._layer_names)}
    seen = set()
    out = []
    for layer, blobs in net.params.items():
        for j, blob in enumerate(blobs):
            key = blob.diff.__array_interface__["data"][0]
            if blob.count == 0 or key in seen:
                continue
            seen.add(key)
            out.append(("%s#%d" % (layer, j), blob, index[layer]))
    return out


class Distributed:
    """Averages solver's diffs across ranks every iteration (see the module's notes). compression
    "fp16" or "bf16" sends them in 16 bits (arithmetic stays fp32). overlap=True hands each blob to
    the engine as soon as backward has finished it (pycaffe's per-layer Net.after_backward hook), so
    the bridge exchanges it while Caffe computes the layers below; the wait is then in
    on_gradients_ready only for what is not done yet."""

    def __init__(self, solver, compression=None, overlap=False):
        self.bridge = init()
        self.solver = solver
        self.compression = None if compression in (None, "none") else compression
        if self.compression not in (None, "fp16", "bf16"):
            raise ValueError("unicc.caffe: compression %r is not one of none, fp16, bf16" % (compression,))
        found = learnable_blobs(solver.net)
        self.blobs = [(name, blob) for name, blob, _ in found]
        self._slices = []
        at = 0
        for _, blob in self.blobs:
            self._slices.append(slice(at, at + blob.count))
            at += blob.count
        self._slab = self.bridge.alloc(max(at, 1) * 4)
        self._flat = np.frombuffer(self._slab.buffer, np.float32, at)
        self._started = False
        self._handles = {}  # blob index -> Handle, this iteration's
        self.overlapped = 0  # blobs handed over during backward (overlap=True), over all iterations
        self.exchange_s = 0.0  # time this thread spent on the exchange (copies, submits, waits), for the benchmark
        solver.add_callback(self._on_start, self._on_gradients_ready)
        self._final_at = {}  # layer index -> the blobs whose diff is final after its backward
        for k, (_, _, final_after) in enumerate(found):
            self._final_at.setdefault(final_after, []).append(k)
        # Backward runs iter_size times per iteration (the diffs accumulate), so blobs go in the last
        # pass; pycaffe does not expose iter_size: the first iteration counts the passes (and submits
        # everything in on_gradients_ready).
        self._overlap, self._passes, self._pass = overlap, None, 0
        self._top = len(solver.net.layers) - 1
        if overlap:
            solver.net.after_backward(self._on_layer_backward)

    def synced(self):
        """Every rank holds the same weights already (unicc.caffe.elastic.SolverState put them in):
        no broadcast at the first iteration."""
        self._started = True

    def _on_start(self):
        self._pass = 0
        self._handles = {}  # an iteration that failed (a peer lost) leaves its handles behind
        if self._started:
            return
        self._started = True
        # Rank 0's weights everywhere before the first forward pass (also after restore or copy_from).
        for (_, blob), s in zip(self.blobs, self._slices):
            self._flat[s] = blob.data.reshape(-1)
        self.bridge.submit("broadcast", self._slab, "f32", self._flat.size, root=0).wait()
        for (_, blob), s in zip(self.blobs, self._slices):
            blob.data[...] = self._flat[s].reshape(blob.data.shape)

    def _submit(self, k):
        name, blob = self.blobs[k]
        s = self._slices[k]
        self._flat[s] = blob.diff.reshape(-1)
        self._handles[k] = self.bridge.submit("allreduce", self._slab, "f32", s.stop - s.start, offset=s.start * 4,
                                              op="average", name=name, compression=self.compression)

    def _on_layer_backward(self, layer):
        t0 = time.perf_counter()
        if layer == self._top:
            self._pass += 1
        if self._pass == self._passes:
            for k in self._final_at.get(layer, ()):
                self._submit(k)
                self.overlapped += 1
        self.exchange_s += time.perf_counter() - t0

    def _on_gradients_ready(self):
        t0 = time.perf_counter()
        if self._overlap and self._passes is None:
            self._passes = self._pass
        for k in range(len(self.blobs)):
            if k not in self._handles:
                self._submit(k)
        for h in self._handles.values():
            h.wait()
        self._handles = {}
        for (_, blob), s in zip(self.blobs, self._slices):
            blob.diff[...] = self._flat[s].reshape(blob.diff.shape)
        self.exchange_s += time.perf_counter() - t0


def distribute(solver, compression=None, overlap=False):
    """Makes solver data-parallel across the job's ranks; returns the Distributed doing it. Only rank 0
    tests, displays and snapshots (Caffe's root-solver rule; get_solver also turns them off in the
    other ranks' solver files)."""
    return Distributed(solver, compression, overlap)
