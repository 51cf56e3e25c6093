"""Whether this process is ending on an uncaught exception. atexit runs after the traceback is
printed, and a rank that is failing must not close its world collectively: that waits for peers
that may be blocked on this very rank. It leaves at once instead, and the launcher names it as the
rank that failed first."""

import sys

_seen = []


def watch():
    """Wraps sys.excepthook once (it runs for an uncaught exception just before atexit does)."""
    if getattr(sys.excepthook, "_unicc_watch", False):
        return
    previous = sys.excepthook

    def hook(kind, value, tb):
        if not hasattr(sys, "ps1"):  # an interactive prompt goes on after printing it
            _seen.append(kind)
        previous(kind, value, tb)

    hook._unicc_watch = True
    sys.excepthook = hook


def ending():
    """True once an uncaught exception is ending the interpreter."""
    return bool(_seen)
