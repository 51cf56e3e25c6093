"""unicc's Python client: one bridge process per rank hosts the communication core, and every
Python framework adapter (unicc.torch, and the MXNet and Caffe ones) talks to it through this package.

    import unicc
    b = unicc.init()          # starts this rank's bridge (once), from the env `unicc run` set
    b.rank, b.size, b.local_rank, b.local_size

See _bridge.py for the Bridge/Slab/Handle API that adapters build on.
"""

from pkgutil import extend_path

# unicc.torch (and the other adapters) live in their own packages' python/ folders.
__path__ = extend_path(__path__, __name__)

from ._bridge import Bridge, BridgeError, Handle, Slab, UniccError, DTYPE_BYTES, prove_token, timeout_s  # noqa: E402

__all__ = ["init", "bridge", "shutdown", "rank", "size", "local_rank", "local_size", "Bridge", "BridgeError", "Handle", "Slab", "UniccError", "DTYPE_BYTES",
           "prove_token", "timeout_s"]

_bridge = None


def init(**kwargs):
    """Starts this rank's bridge (the first call only) and returns it."""
    global _bridge
    if _bridge is None:
        _bridge = Bridge(**kwargs)
    return _bridge


def bridge():
    """The bridge init() started; raises if there is none."""
    if _bridge is None:
        raise UniccError("unicc: call init() first")
    return _bridge


def shutdown():
    """Stops the bridge (also done at exit)."""
    global _bridge
    if _bridge is not None:
        _bridge.close()
        _bridge = None


# Horovod's names for this rank's place, shared by every adapter (each re-exports them).
def rank():
    return bridge().rank


def size():
    return bridge().size


def local_rank():
    return bridge().local_rank


def local_size():
    return bridge().local_size
