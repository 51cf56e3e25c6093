"""Ray as the hosts and the launch agent of `unicc run --ray ADDRESS` (launcher/ray.ts):

    python -m unicc._ray hosts ADDRESS
        prints the Ray cluster's live nodes, one "ip:cpus" a line: the slots an elastic job grows
        onto and shrinks from, read like a --host-discovery-script's answer.
    python -m unicc._ray exec ADDRESS IP -- COMMAND...
        runs COMMAND as a Ray actor on a node at IP (one CPU of it) and passes its stdin, stdout,
        stderr and exit status through, like `ssh IP COMMAND`. The actor dies with this process
        (Ray ends an owner's actors), and the command dies with its actor (PR_SET_PDEATHSIG), so a
        rank, its actor and this agent end together whichever of them goes first.

The launcher keeps the membership as with any agent; Ray only supplies and runs the slots.
UNICC_RAY_NODE_IP: this machine's address in the Ray cluster, where Ray would guess another.
"""

import ctypes
import os
import queue
import signal
import subprocess
import sys
import threading
import uuid

PR_SET_PDEATHSIG = 1
CHUNK = 1 << 16


def _connect(address):
    import ray

    ray.init(address=address, _node_ip_address=os.environ.get("UNICC_RAY_NODE_IP") or None, namespace="unicc",
             log_to_driver=False, logging_level="ERROR", configure_logging=False)
    return ray


def hosts(address):
    # Ray's own client of its control store: what ray.nodes() reads, without becoming a driver
    # (a third of the time, and no job registered at every poll).
    from ray._raylet import GcsClient
    from ray.core.generated.gcs_pb2 import GcsNodeInfo

    for node in GcsClient(address=address).get_all_node_info(timeout=10).values():
        cpus = int(node.resources_total.get("CPU", 0))
        if node.state == GcsNodeInfo.ALIVE and cpus > 0:
            print("%s:%d" % (node.node_manager_address, cpus))


def _die_with_parent():
    # Runs in the child between fork and exec: SIGKILL when the actor's process goes.
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class _Rank:
    """The actor: one command, its output streamed back as ("out"|"err", bytes), then ("exit", status)."""

    def run(self, argv, stdin, cwd, name):
        # UNICC_RAY_ACTOR: the actor's name in namespace "unicc", for the rank to find its actor by.
        # Its own process group, as the launcher gives local ranks: what it started (its bridge)
        # goes with it.
        child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 cwd=cwd if cwd and os.path.isdir(cwd) else None, preexec_fn=_die_with_parent,
                                 start_new_session=True, env=dict(os.environ, UNICC_RAY_ACTOR=name))
        child.stdin.write(stdin)
        child.stdin.close()
        chunks = queue.Queue()

        def pump(name, pipe):
            for chunk in iter(lambda: pipe.read1(CHUNK), b""):
                chunks.put((name, chunk))
            chunks.put((name, None))

        for name, pipe in (("out", child.stdout), ("err", child.stderr)):
            threading.Thread(target=pump, args=(name, pipe), daemon=True).start()
        open_pipes = 2
        while open_pipes:
            name, chunk = chunks.get()
            if chunk is None:
                open_pipes -= 1
            else:
                yield name, chunk
        code = child.wait()
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        yield "exit", 128 - code if code < 0 else code


def execute(address, ip, argv):
    stdin = sys.stdin.buffer.read()  # the launcher writes the job token and closes it
    ray = _connect(address)
    name = "unicc-rank-" + uuid.uuid4().hex
    rank = ray.remote(_Rank).options(name=name, num_cpus=1, max_restarts=0, resources={"node:" + ip: 0.001}).remote()
    # Stopped by the launcher: the actor (and with it the command) goes first.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda s, _f: (ray.kill(rank, no_restart=True), os._exit(128 + s)))
    out = {"out": sys.stdout.buffer, "err": sys.stderr.buffer}
    try:
        for ref in rank.run.remote(argv, stdin, os.getcwd(), name):
            name, data = ray.get(ref)
            if name == "exit":
                return data
            out[name].write(data)
            out[name].flush()
    except ray.exceptions.RayError as e:
        # The actor died (ray.kill, its process killed, its node lost): say so on the rank's stderr.
        sys.stderr.write("unicc: the Ray actor of this rank on %s died: %s\n" % (ip, str(e).splitlines()[0]))
        return 137
    return 1


def main(args):
    if len(args) == 2 and args[0] == "hosts":
        return hosts(args[1])
    if len(args) >= 5 and args[0] == "exec" and args[3] == "--":
        return execute(args[1], args[2], args[4:])
    sys.exit("usage: python -m unicc._ray hosts ADDRESS | exec ADDRESS IP -- COMMAND...")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]) or 0)
