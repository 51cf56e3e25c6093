"""Elastic training (`unicc run --min-np A --max-np B [--host-discovery-script S]`), for every
framework of the one client (torch, MXNet, Keras, Caffe):

    import unicc.elastic, unicc.torch as uc
    uc.init()
    opt = uc.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1), model.named_parameters())
    state = unicc.elastic.State(model=model, optimizer=opt, step=0)

    @unicc.elastic.run
    def train(state):
        while state.step < STEPS:
            x, y = batch(state.step, uc.rank(), uc.size())   # shard by the rank and size in effect now
            opt.zero_grad(); loss(model(x), y).backward(); opt.step()
            state.step += 1
            state.commit()

    train(state)

MXNet and Keras pass their model through an adapter with state_dict()/load_state_dict():
State(net=unicc.mxnet.elastic.GluonState(net.collect_params(), trainer)) and
State(model=unicc.tensorflow.keras.elastic.KerasState(model, optimizer)).

When a rank dies (or hosts join), the survivors' collectives fail (or commit() sees the launcher's
flag); run() then puts back the last commit, re-forms the world at the new size, has the new
rank 0 send its commit to every rank (newcomers included) and calls the function again. Steps
after the last commit are lost.
"""

import copy
import os
import pickle
import struct
import sys
import time

import unicc

from ._bridge import BridgeError, UniccError

__all__ = ["State", "run", "HostsChanged"]


class HostsChanged(Exception):
    """Raised by commit() on every rank at once when the launcher will re-form the world (hosts
    joined); run() catches it."""


class State:
    """What survives a re-forming: objects with state_dict()/load_state_dict() (a torch model or
    optimizer, anything alike) by their state, and plain values (epoch, batch...) as attributes.

    commit() keeps a copy in memory on every rank (and with `path`, rank 0 also writes it there,
    so that a restarted job starts from it); restore() puts the copy back; sync(root) makes every
    rank's state the one of rank `root`. Pass picklable values."""

    def __init__(self, path=None, **items):
        self._objects = {k: v for k, v in items.items() if hasattr(v, "state_dict") and hasattr(v, "load_state_dict")}
        self._path = path
        for k, v in items.items():
            if k not in self._objects:
                setattr(self, k, v)
        self._values = [k for k in items if k not in self._objects]
        self._saved = None
        if path and os.path.exists(path):
            with open(path, "rb") as f:
                self._load(pickle.load(f))
        self.save()

    def __getattr__(self, name):
        objects = self.__dict__.get("_objects", {})
        if name in objects:
            return objects[name]
        raise AttributeError(name)

    def _snapshot(self):
        snap = {k: copy.deepcopy(o.state_dict()) for k, o in self._objects.items()}
        snap.update({k: copy.deepcopy(getattr(self, k)) for k in self._values})
        return snap

    def _load(self, snap):
        for k, o in self._objects.items():
            o.load_state_dict(copy.deepcopy(snap[k]))
        for k in self._values:
            setattr(self, k, copy.deepcopy(snap[k]))

    def save(self):
        """Keeps the current state in memory (and on disk with `path`, from rank 0)."""
        self._saved = self._snapshot()
        if self._path and unicc.bridge().rank == 0:
            tmp = "%s.tmp-%d" % (self._path, os.getpid())
            with open(tmp, "wb") as f:
                pickle.dump(self._saved, f)
            os.replace(tmp, self._path)

    def commit(self):
        """save(), then (collective, every rank at the same step) raises HostsChanged if the
        launcher will re-form the world, so that all ranks leave it at this commit."""
        self.save()
        if unicc.bridge().membership_changed():
            raise HostsChanged()

    def restore(self):
        """Back to the last commit."""
        self._load(self._saved)

    def sync(self, root=0):
        """Collective: every rank's state (and saved copy) becomes rank root's."""
        b = unicc.bridge()
        if b.size > 1:
            data = broadcast_bytes(pickle.dumps(self._saved) if b.rank == root else None, root)
            if b.rank != root:
                self._saved = pickle.loads(data)
        self.restore()


def broadcast_bytes(data, root=0):
    """Rank root's bytes on every rank (others pass None)."""
    b = unicc.bridge()
    head = b.alloc(8)
    try:
        struct.pack_into("<q", head.buffer, 0, len(data) if b.rank == root else 0)
        b.submit("broadcast", head, "i64", 1, root=root).wait()
        (size,) = struct.unpack_from("<q", head.buffer, 0)
    finally:
        b.release(head)
    body = b.alloc(max(size, 4))
    try:
        if b.rank == root:
            body.buffer[:size] = data
        b.submit("broadcast", body, "i32", -(-size // 4), root=root).wait()
        return bytes(body.buffer[:size])
    finally:
        b.release(body)


def run(func):
    """Wraps func(state, ...): runs it until it returns, re-forming the world, restoring the last
    commit and syncing it from the new rank 0 each time a peer is lost or hosts join (a loss
    during the re-forming itself starts it again)."""

    def wrapper(state, *args, **kwargs):
        b = unicc.bridge()
        reformed = None  # (since, size before, why) while re-forming
        while True:
            try:
                state.sync()  # newcomers take the survivors' state
                if reformed is not None:
                    since, size, why = reformed
                    print("unicc: rank %d: re-formed the world: %d -> %d ranks in %.2f s (generation %d; %s)"
                          % (b.rank, size, b.size, time.monotonic() - since, b.generation, why), file=sys.stderr, flush=True)
                    reformed = None
                return func(state, *args, **kwargs)
            except HostsChanged:
                why = "hosts changed"
            except BridgeError:
                raise  # this rank's own bridge is gone: nothing to re-form with
            except UniccError as e:
                why = str(e).splitlines()[0]
            if reformed is None:
                reformed = (time.monotonic(), b.size, why)
            state.restore()
            b.reform()

    wrapper.__name__ = getattr(func, "__name__", "run")
    wrapper.__doc__ = func.__doc__
    return wrapper
