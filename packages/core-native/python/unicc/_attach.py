"""The bridge `unicc run --bridge` started for this rank (launcher/bridges.ts): the client connects to
the socket named in UNICC_BRIDGE_SOCKET instead of starting a bridge, and puts its slabs in
UNICC_BRIDGE_DIR, a folder both sides see (so a rank in a chroot or container that cannot run Node
still reaches the core). The bridge is not our child, and in a container its pid means nothing
here: this stands in for its Popen with the connection as the only sign of it. Closing the
connection ends it (and its rank, as any vanished client does); how it ended, the launcher reports.
"""

import socket


class LauncherBridge:
    stderr = None  # the launcher relays the bridge's output itself

    def __init__(self, env):
        self.socket = env["UNICC_BRIDGE_SOCKET"]
        self.slab_dir = env.get("UNICC_BRIDGE_DIR") or "/dev/shm"
        self.pid = int(env.get("UNICC_BRIDGE_PID") or 0)
        self._sock = None
        self._reader = None

    def follow(self, sock, reader):
        """The connection, and the thread that reads it until the bridge closes it."""
        self._sock, self._reader = sock, reader

    def poll(self):
        return None  # not observable: a dead bridge shows as its connection closing

    def kill(self):
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def wait(self, timeout):
        """Until the bridge closed the connection (it does so as it exits)."""
        if self._reader is not None:
            self._reader.join(timeout)

    @staticmethod
    def how():
        return "closed its connection (unicc run --bridge started it; the launcher says how it ended)"
