"""Whether this process is ending on an uncaught exception. atexit runs after the traceback is
printed, and a rank that is failing must not close its world collectively: that waits for peers
that may be blocked on this very rank. It leaves at once instead, and the launcher names it as the
rank that failed first.

The interpreter itself records an uncaught exception in sys.last_value before it calls
sys.excepthook, so this holds whatever hook the program installs, and whenever it does."""

import sys


def ending():
    """True once an uncaught exception is ending the interpreter (not at an interactive prompt,
    which records every exception there and goes on)."""
    return getattr(sys, "last_value", None) is not None and not hasattr(sys, "ps1")
