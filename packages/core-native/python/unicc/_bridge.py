"""The Python side of the bridge protocol (see src/ts/bridge/protocol.ts for the wire format).

A Bridge starts this rank's bridge process (Node, hosting the core), or connects to the one
`unicc run --bridge` started (_attach.py), proves the job token to it,
and then drives collectives on shared-memory slabs that both processes map. Requests go through
the command ring (_ring.py: shared memory and futex doorbells, read by a native thread of the
bridge) where there is one, else over the socket; setup, mapping and failure always use the
socket. Framework adapters (unicc.torch, and the MXNet and Caffe ones) copy tensors into slabs, submit, and copy back; memory
that is shared already (a descriptor of a shm file or memfd) is mapped by map_fd and reduced in place.
Pure Python 3.9+, no third-party imports.
"""

import atexit
import collections
import hashlib
import hmac
import itertools
import json
import os
import queue
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

from . import _lane, _raising, _ring, _shm
from ._attach import LauncherBridge
from ._node import NodeNotFound, bridge_js, find_node

PROTOCOL_VERSION = 1
MAX_MESSAGE = 64 * 1024
DTYPE_BYTES = {"f32": 4, "f64": 8, "i32": 4, "i64": 8}
#: Seconds the bridge may stay silent beyond UNICC_TIMEOUT_S before a wait gives up on it.
MARGIN_S = 10.0
_MIN_SLAB = 4096


class UniccError(RuntimeError):
    """A collective failed: a peer died or timed out (the message names the rank), or misuse."""


class BridgeError(UniccError):
    """This rank's bridge process died, refused us, or broke the protocol."""


def timeout_s(env=None):
    raw = (env or os.environ).get("UNICC_TIMEOUT_S", "")
    try:
        return float(raw) if raw else 30.0
    except ValueError:
        raise UniccError("unicc: UNICC_TIMEOUT_S=%r is not a number of seconds" % raw) from None


def _code(table, what, v):
    """The ring's number for v, or the error the socket's bridge would give."""
    c = table.get(v)
    if c is None:
        raise ValueError("unicc: unknown %s %r (%s)" % (what, v, ", ".join(table)))
    return c


_LANE_BARRIER = (_ring.COLLS["barrier"], 0, 0, 0, False)


def _ring_codes(coll, dtype, op, compression):
    """The ring's numbers for a request's dtype (0 for a barrier, which has none), op and compression."""
    dt = 0
    if coll != "barrier":
        dt = _ring.DTYPES.get(dtype)
        if dt is None:
            raise TypeError("unicc: dtype %r is not one of %s" % (dtype, sorted(DTYPE_BYTES)))
    o = 0 if op is None else _code(_ring.OPS, "reduce op", op)
    return dt, o, _ring.DEFAULT_WIRE if compression is None else _code(_ring.WIRES, "compression", compression)


class Handle:
    """One request in flight. wait() returns once the bridge answered, or raises its error."""

    # Light on purpose (made for every request): a threading.Event costs a Condition. A waiter for
    # a request on the ring sleeps on the ring's futex; one for an answer on the socket on a held
    # lock (`_latch`), which the socket's reader releases.
    __slots__ = ("what", "result", "_bridge", "_ring", "_since", "_done", "_latch", "_error", "_callbacks", "_lock")

    def __init__(self, bridge, what, ring=None):
        self.what = what
        self._ring = ring  # the ring the request went through; None: the socket
        self.result = None  # the bridge's answer, for requests that have one
        self._bridge = bridge
        self._since = time.monotonic()
        self._done = False
        self._latch = None  # made by the first socket waiter
        self._error = None
        self._callbacks = None
        self._lock = threading.Lock()

    def done(self):
        if not self._done and self._ring is not None:
            self._ring.reap()
        return self._done

    def _is_done(self):
        return self._done

    def _wait_a_while(self, b, timeout_s=0.5):
        """True once done; else after about timeout_s."""
        if self._done:
            return True
        if self._ring is not None:
            self._ring.pump(self._is_done, timeout_s)
            return self._done
        with self._lock:
            if self._done:
                return True
            if self._latch is None:
                self._latch = threading.Lock()
                self._latch.acquire()  # released by _finish
            latch = self._latch
        if latch.acquire(timeout=timeout_s):
            latch.release()  # for the other waiters
        return self._done

    def wait(self):
        """Blocks until done; bounded: gives up when, while this request is pending, the bridge says
        nothing for UNICC_TIMEOUT_S + MARGIN_S (the core fails a collective without progress sooner)."""
        b = self._bridge
        while not self._wait_a_while(b):
            silent = time.monotonic() - max(b._last_heard, self._since)
            if silent > b.timeout_s + MARGIN_S and not self._done:
                b._fail(BridgeError(
                    "unicc: rank %d: the bridge (pid %d) gave no answer for %.0f s while %s was pending"
                    % (b.rank, b.pid, silent, self.what)))
        if self._error is not None:
            raise self._error

    def add_done_callback(self, fn):
        """fn(handle) runs once done: on one of the client's callback threads (never the thread that
        reads the bridge, so fn may itself wait for another request), or now if already done."""
        with self._lock:
            if not self._done:
                if self._callbacks is None:
                    self._callbacks = []
                    self._bridge._watch(1)  # the ring's completions must be read without a waiter
                self._callbacks.append(fn)
                return
        fn(self)

    def exception(self):
        return self._error

    @classmethod
    def finished(cls, bridge, what, error):
        """The handle of a request done already (the client lane's), with its error or None."""
        h = cls(bridge, what)
        h._done = True  # nobody holds it yet: no waiter or callback to tell
        h._error = error
        return h

    def _finish(self, error):
        with self._lock:
            if self._done:
                return
            self._error = error
            self._done = True
            callbacks, self._callbacks = self._callbacks, None
            if self._latch is not None:
                self._latch.release()
        if callbacks:
            self._bridge._watch(-1)
            self._bridge._callbacks.run(lambda: [fn(self) for fn in callbacks])


class _CallbackThreads:
    """Runs completion callbacks off the reader thread. A callback may block on another request
    (PowerSGD's DDP hook waits inside one), so a task never queues behind a busy thread: with none
    idle, a new thread starts. Threads stay for later callbacks."""

    def __init__(self):
        self._tasks = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0

    def run(self, task):
        with self._lock:
            spawn = self._idle == 0
            if not spawn:
                self._idle -= 1  # that thread will take this task
        self._tasks.put(task)
        if spawn:
            threading.Thread(target=self._work, name="unicc-callbacks", daemon=True).start()

    def _work(self):
        while True:
            task = self._tasks.get()
            try:
                task()
            except Exception as e:  # one callback's failure must not stop the others
                print("unicc: a completion callback raised: %r" % (e,), file=sys.stderr)
            # Hold nothing while idle: what a callback captured is freed on its usual thread.
            task = None
            with self._lock:
                self._idle += 1


class Slab:
    """A shared-memory file mapped here (`buffer`, a writable mmap) and in the bridge (buffer `id`).
    Adapters may keep their typed views of it in `views`."""

    __slots__ = ("id", "nbytes", "buffer", "views", "unmapped")

    def __init__(self, id_, nbytes, buffer):
        self.id = id_
        self.nbytes = nbytes
        self.buffer = buffer
        self.views = {}
        self.unmapped = False  # unmap() sent: the socket's message may trail a ring request, so we refuse here


class Bridge:
    """This rank's connection to its bridge process. Thread-safe: requests may be submitted from
    any thread, and many may be in flight."""

    def __init__(self, env=None, node=None, script=None):
        env = dict(os.environ if env is None else env)
        self.timeout_s = timeout_s(env)
        self.rank = int(env.get("UNICC_RANK") or env.get("RANK") or 0)  # until the bridge says
        self.pid = 0
        self._send_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._pending = {}
        self._callbacks = _CallbackThreads()
        self._unmapped = {}  # slab id -> its /dev/shm path, until the bridge has mapped it
        self._fd_maps = {}  # slab id -> Handle of a map_fd the bridge has not answered yet
        self._mapping = {}  # slab id -> Event set once the bridge mapped it (ring requests wait for it)
        self._ring = None
        self.attach = "no command ring"
        #: The client lane (small requests run in this process) when every rank has one, else None.
        self.lane = None
        #: Why there is no lane (None when there is).
        self.lane_why = "no command ring"
        self._lane_kinds = {}  # (coll, dtype, op, root, compression, check_span) -> Lane.run's kind
        self._watched = 0  # requests with callbacks in flight: the ring's reaper thread reads for them
        self._watch_cv = threading.Condition()
        self._free = collections.defaultdict(list)
        self._slabs = []
        self._ids = itertools.count(1)
        self._fatal = None
        self._closing = False
        self._last_heard = time.monotonic()
        self._stderr_tail = collections.deque(maxlen=20)
        attached = env.get("UNICC_BRIDGE_SOCKET")
        self._proc = LauncherBridge(env) if attached else None
        self._shm_prefix = os.path.join(self._proc.slab_dir if attached else "/dev/shm", "unicc-%s-bridge-%d-%d-" % (
            env.get("UNICC_JOB_ID") or "solo", self.rank, os.getpid()))
        self._dir = None
        path = attached or self._start(env, node, script)
        self.pid = self._proc.pid
        try:
            self._sock = self._connect(path)
            self._handshake(env.get("UNICC_JOB_TOKEN") or None)
            if env.get("UNICC_BRIDGE_RING", "1") != "0" and _ring.available():
                self._open_ring(env.get("UNICC_BRIDGE_ATTACH", "1") != "0", env.get("UNICC_BRIDGE_LANE", "1") != "0")
        except BaseException:
            self._proc.kill()
            self._stop_process()
            raise
        self._reader = threading.Thread(target=self._read_loop, name="unicc-bridge-reader", daemon=True)
        self._reader.start()
        if attached:
            self._proc.follow(self._sock, self._reader)
        atexit.register(self.close)
        if self._ring is not None and self.size > 1:
            self._agree_on_lane()

    # ---- startup

    def _start(self, env, node, script):
        """Starts this rank's bridge as our child; returns the socket path it will listen on."""
        script = script or env.get("UNICC_BRIDGE_JS") or bridge_js()
        try:
            node = node or find_node(env)
        except NodeNotFound as e:
            raise BridgeError("unicc: rank %d: cannot start the bridge: %s" % (self.rank, e)) from None
        if not os.path.isfile(script):
            raise BridgeError("unicc: rank %d: bridge script %s not found; build @unicc/core (npm run build) or set UNICC_BRIDGE_JS" % (self.rank, script))
        self._dir = tempfile.mkdtemp(prefix="unicc-bridge-")  # mode 0700
        path = os.path.join(self._dir, "s")
        self._proc = subprocess.Popen(
            [node, script, "--socket", path], env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, close_fds=True)
        threading.Thread(target=self._pump_stderr, name="unicc-bridge-stderr", daemon=True).start()
        return path

    def _what_died(self):
        if isinstance(self._proc, LauncherBridge):
            return "unicc: rank %d: the bridge process (pid %d) %s" % (self.rank, self.pid, self._proc.how())
        try:  # a broken socket is seen a moment before the process is reaped
            self._proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            pass
        time.sleep(0.05)  # let its last words reach the tail
        code = self._proc.poll()
        how = ("was killed by signal %d" % -code) if code is not None and code < 0 else (
            "exited with code %s" % code if code is not None else "closed its connection")
        tail = "".join(self._stderr_tail).strip()
        return "unicc: rank %d: the bridge process (pid %d) %s%s" % (
            self.rank, self.pid, how, (": " + tail.splitlines()[-1]) if tail else "")

    def _connect(self, path):
        # The bridge listens once its world is up, which waits for every rank's rendezvous.
        deadline = time.monotonic() + 2 * self.timeout_s + MARGIN_S
        while True:
            if self._proc.poll() is not None:
                raise BridgeError(self._what_died() + " before it was ready")
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
                return s
            except (FileNotFoundError, ConnectionRefusedError):
                s.close()
            if time.monotonic() > deadline:
                raise BridgeError("unicc: rank %d: the bridge (pid %d) did not start listening within %.0f s"
                                  % (self.rank, self.pid, 2 * self.timeout_s + MARGIN_S))
            time.sleep(0.02)

    def _handshake(self, token):
        self._sock.settimeout(self.timeout_s + MARGIN_S)
        hello = self._recv()
        if hello.get("t") != "hello" or hello.get("version") != PROTOCOL_VERSION:
            raise BridgeError("unicc: rank %d: unexpected greeting from the bridge: %r" % (self.rank, hello))
        answer = ""
        if hello.get("auth"):
            if not token:
                raise BridgeError("unicc: rank %d: the bridge wants UNICC_JOB_TOKEN, which this process lacks" % self.rank)
            answer = prove_token(token, bytes.fromhex(hello["challenge"]))
        self._send({"t": "auth", "answer": answer})
        welcome = self._recv()
        if welcome.get("t") != "welcome":
            raise BridgeError(welcome.get("message") or "unicc: rank %d: the bridge refused us" % self.rank)
        self._sock.settimeout(None)
        self._placed(welcome)

    def _placed(self, welcome):
        self.rank = welcome["rank"]
        self.size = welcome["size"]
        self.local_rank = welcome["localRank"]
        self.local_size = welcome["localSize"]
        self.algorithm = welcome["algorithm"]
        #: Elastic jobs: the generation of the current world (-1 in a job that is not elastic).
        self.generation = welcome.get("generation", -1)

    def _open_ring(self, attach, lane):
        """Offers the bridge a command ring (before any mapping, as the protocol asks); a refusal
        leaves requests on the socket. With attach, offers cross-memory attach too; with lane,
        joins the client lane the bridge may offer in its answer."""
        path = self._shm_prefix + "ring"
        ring = _ring.Ring(path, self._complete)
        msg = {"t": "ring", "path": path, "bytes": _ring.BYTES}
        if attach:
            _ring.allow_tracer(self.pid)
            msg.update(pid=os.getpid(), probe=ring.address)
        try:
            self._sock.settimeout(self.timeout_s + MARGIN_S)
            self._send(msg)
            reply = self._recv()
            self._sock.settimeout(None)
        finally:
            self._unlink(path)  # mapped by both sides (or refused): the name can go
        if reply.get("t") != "ring":
            ring.close()
            raise BridgeError(reply.get("message") or "unicc: rank %d: unexpected answer to the ring: %r" % (self.rank, reply))
        if reply.get("error"):
            ring.close()
            return
        self._ring = ring
        #: Whether collectives may work on this process's own memory (submit_at); else why not.
        self.attach = reply.get("attach", "not offered") if attach else "off (UNICC_BRIDGE_ATTACH=0)"
        threading.Thread(target=self._reap_for_callbacks, name="unicc-ring-reaper", daemon=True).start()
        offer = reply.get("lane")
        if not lane:
            self.lane_why = "off (UNICC_BRIDGE_LANE=0)"
        elif offer is None:
            self.lane_why = "not offered (a world of several hosts or of one rank, or no client-lane library)"
        else:
            try:
                self.lane = _lane.Lane(offer, self.local_rank, self.timeout_s)
                self.lane_why = None
            except OSError as e:
                self.lane_why = str(e)

    def _agree_on_lane(self):
        """Every rank must send small requests the same way: the lane is used only if all joined it."""
        slab = self.alloc(4)
        try:
            flag = memoryview(slab.buffer).cast("i")
            flag[0] = int(self.lane is not None)
            self.submit("allreduce", slab, "i32", 1, op="min").wait()
            everyone = flag[0] == 1
            flag.release()
        finally:
            self.release(slab)
        if self.lane is not None and not everyone:
            self.lane.close()
            self.lane = None
            self.lane_why = "another rank has none"

    @property
    def transport(self):
        """How requests reach the bridge: "ring" (shared memory, futex doorbells) or "socket"."""
        return "socket" if self._ring is None else "ring"

    # ---- wire

    def _send(self, msg):
        body = json.dumps(msg, separators=(",", ":")).encode()
        with self._send_lock:
            self._sock.sendall(struct.pack(">I", len(body)) + body)

    def _recv_exact(self, n):
        chunks = []
        while n:
            c = self._sock.recv(n)
            if not c:
                raise EOFError
            chunks.append(c)
            n -= len(c)
        return b"".join(chunks)

    def _recv(self):
        (n,) = struct.unpack(">I", self._recv_exact(4))
        if n > MAX_MESSAGE:
            raise BridgeError("unicc: rank %d: the bridge sent a %d-byte message (limit %d)" % (self.rank, n, MAX_MESSAGE))
        msg = json.loads(self._recv_exact(n))
        self._last_heard = time.monotonic()
        return msg

    def _read_loop(self):
        try:
            while True:
                msg = self._recv()
                t = msg.get("t")
                if t in ("done", "welcome"):
                    self._complete(msg.get("req"), msg.get("error"), msg)
                elif t == "mapped":
                    # Both sides hold the mapping now: the name can go, so no crash leaves it.
                    self._unlink(self._unmapped.pop(msg["id"], None))
                    ev = self._mapping.pop(msg["id"], None)
                    if ev is not None:
                        ev.set()
                    h = self._fd_maps.pop(msg["id"], None)
                    if h is not None:
                        h._finish(UniccError(msg["error"]) if msg.get("error") else None)
                elif t == "error":
                    raise BridgeError(msg.get("message", "unicc: the bridge reported an error"))
        except BridgeError as e:
            self._fail(e)
        except (EOFError, OSError, ValueError):
            if not self._closing:
                self._fail(BridgeError(self._what_died()))

    def _complete(self, req, error, answer=None):
        """A request's answer, from the socket or the ring (the socket's whole message, for requests
        whose answer carries more than success)."""
        self._last_heard = time.monotonic()
        h = self._pending.pop(req, None)
        if h is not None:
            h.result = answer
            h._finish(UniccError(error) if error else None)

    def _watch(self, n):
        with self._watch_cv:
            self._watched += n
            if self._watched > 0:
                self._watch_cv.notify()

    def _reap_for_callbacks(self):
        """Reads the ring's completions while requests with callbacks are in flight and no one
        else may be waiting (a DDP hook's future completes from them)."""
        ring = self._ring
        while True:
            with self._watch_cv:
                while self._watched <= 0 and not self._closing and self._fatal is None:
                    self._watch_cv.wait()
                if self._closing or self._fatal is not None:
                    return
            ring.pump(None, 0.5)

    def _fail(self, error):
        with self._state_lock:
            if self._fatal is None:
                self._fatal = error
            pending = list(self._pending.values()) + list(self._fd_maps.values())
            self._pending.clear()
            self._fd_maps.clear()
        for h in pending:
            h._finish(self._fatal)
        for ev in list(self._mapping.values()):
            ev.set()  # a request waiting for its slab's mapping sees the failure
        if self._ring is not None:
            self._ring.wake()  # so do the threads sleeping on the ring
        with self._watch_cv:
            self._watch_cv.notify_all()

    def _pump_stderr(self):
        # Forward the bridge's messages (the launcher prefixes them with the rank) and keep a tail for errors.
        for line in iter(self._proc.stderr.readline, b""):
            text = line.decode(errors="replace")
            self._stderr_tail.append(text)
            sys.stderr.write(text)
            sys.stderr.flush()

    # ---- shared memory

    def alloc(self, nbytes):
        """A slab of at least nbytes (slabs are pooled by power-of-two size and reused)."""
        size = _MIN_SLAB
        while size < nbytes:
            size *= 2
        with self._state_lock:
            if self._free[size]:
                return self._free[size].pop()
        sid = next(self._ids)
        path = self._shm_prefix + str(sid)
        buf = _shm.make(path, size)
        # Not waiting for the bridge to map it (a completion callback that starts the next
        # collective should not wait on the bridge): it handles messages in order, so it maps
        # the slab before any request that uses it.
        with self._state_lock:
            if self._fatal is not None:
                os.unlink(path)
                raise self._fatal
            self._unmapped[sid] = path
            self._mapping[sid] = threading.Event()
        try:
            self._send({"t": "map", "id": sid, "path": path, "bytes": size})
        except OSError:
            self._unlink(self._unmapped.pop(sid, None))
            self._fail(BridgeError(self._what_died()))
            raise self._fatal from None
        slab = Slab(sid, size, buf)
        self._slabs.append(slab)
        return slab

    @staticmethod
    def _unlink(path):
        if path is not None:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def release(self, slab):
        with self._state_lock:
            self._free[slab.nbytes].append(slab)

    # ---- requests

    def _register(self, table, key, handle):
        with self._state_lock:
            if self._fatal is not None:
                raise self._fatal
            if self._closing:
                raise UniccError("unicc: rank %d: %s after close()" % (self.rank, handle.what))
            table[key] = handle

    def map_fd(self, fd, nbytes):
        """A Slab over memory this process already shares: nbytes of the shm file or memfd open as
        descriptor fd, mapped by the bridge (through /proc/<our pid>/fd) so that collectives on it
        work in place, with no copy. The slab has no `buffer` here (the caller has its own mapping);
        keep fd open until this returns, and hand the slab to unmap(), not release(), when done.
        Raises UniccError if the bridge cannot map it (not shared memory, too small, no access)."""
        sid = next(self._ids)
        h = Handle(self, "mapping descriptor %d" % fd)
        self._register(self._fd_maps, sid, h)
        self._send_or_fail({"t": "mapfd", "id": sid, "pid": os.getpid(), "fd": fd, "bytes": nbytes})
        h.wait()
        return Slab(sid, nbytes, None)

    def unmap(self, slab):
        """Forgets a map_fd slab: the bridge drops its mapping once requests on it are done."""
        slab.unmapped = True
        self._send_or_fail({"t": "unmap", "id": slab.id})

    def _send_or_fail(self, msg):
        try:
            self._send(msg)
        except OSError:
            self._fail(BridgeError(self._what_died()))
            raise self._fatal from None

    def barrier(self):
        """Returns once every rank called it: on the client lane where there is one (no handle:
        a step's barrier costs little more than the lane's round), else through the bridge."""
        if self.lane is None:
            return self.submit("barrier").wait()
        error = self.run_here(_LANE_BARRIER, 0, 0)
        if error is not None:
            raise error

    def submit(self, coll, slab=None, dtype="f32", count=0, offset=0, op=None, root=None, name=None,
               compression=None, out=None, out_offset=0):
        """Starts a collective on `count` elements of `dtype` at byte `offset` of `slab`; returns a Handle.
        allgather writes size*count elements to `out` at `out_offset`."""
        if coll == "barrier" and self.lane is not None:
            return Handle.finished(self, coll, self.run_here(_LANE_BARRIER, 0, 0))
        req = next(self._ids)
        h = Handle(self, coll if name is None else "%s '%s'" % (coll, name), self._ring)
        if self._ring is not None:
            return self._submit_ring(req, h, coll, slab, dtype, count, offset, op, root, name, compression, out, out_offset)
        msg = {"t": "op", "req": req, "coll": coll}
        if coll != "barrier":
            if dtype not in DTYPE_BYTES:
                raise TypeError("unicc: dtype %r is not one of %s" % (dtype, sorted(DTYPE_BYTES)))
            msg.update(buf=slab.id, dtype=dtype, offset=offset, count=count)
        for k, v in (("op", op), ("root", root), ("name", name), ("compression", compression)):
            if v is not None:
                msg[k] = v
        if out is not None:
            msg.update(out=out.id, outOffset=out_offset)
        self._register(self._pending, req, h)
        self._send_or_fail(msg)
        return h

    def _submit_ring(self, req, h, coll, slab, dtype, count, offset, op, root, name, compression, out, out_offset):
        """submit() through the command ring: the same fields as the op message, checked here
        where the socket's bridge would check them, since they travel as numbers. Every request
        pays for this function: table lookups and one entry written, nothing built per call."""
        c = _code(_ring.COLLS, "collective", coll)
        dt, o, wire = _ring_codes(coll, dtype, op, compression)
        buf = 0 if coll == "barrier" else self._mapped_id(slab)
        raw = b""
        if name is not None:
            raw = name.encode()
            if not raw or len(raw) > _ring.NAME_MAX:
                raise ValueError("unicc: an allreduce name must have 1 to %d bytes, got %d" % (_ring.NAME_MAX, len(raw)))
        out_id = 0 if out is None else self._mapped_id(out)
        self._register(self._pending, req, h)
        ring = self._ring
        ring.submit(req, c, dt, buf, offset, count, o, root or 0, wire, out_id, out_offset, raw, self._ring_full)
        return h

    def submit_at(self, coll, address, dtype, count, op=None, root=None, compression=None):
        """submit() of an unnamed allreduce or broadcast on `count` elements at `address` in this
        process's own memory (a tensor's data pointer, any alignment), which the core reads and
        writes there: no slab, no copy. Where runs_here() says so, this process runs it on the
        client lane before returning (making sure first that the memory is there); else only
        where self.attach is True. Keep the memory alive and untouched until the handle is done."""
        if self.runs_here(address, count * DTYPE_BYTES.get(dtype, 1), DTYPE_BYTES.get(dtype, 1)):
            error = self.run_here(self.lane_kind(coll, dtype, op, root, compression, True), address, count)
            return Handle.finished(self, coll, error)
        if coll not in ("allreduce", "broadcast"):
            raise ValueError("unicc: submit_at takes an allreduce or a broadcast, not %r" % (coll,))
        dt, o, wire = _ring_codes(coll, dtype, op, compression)
        if self.attach is not True:
            raise UniccError("unicc: rank %d: this bridge cannot work on the client's memory: %s" % (self.rank, self.attach))
        req = next(self._ids)
        h = Handle(self, coll, self._ring)
        self._register(self._pending, req, h)
        self._ring.submit(req, _ring.COLLS[coll], dt, _ring.CLIENT_MEMORY, address, count, o, root or 0, wire,
                          full=self._ring_full)
        return h

    def runs_here(self, address, nbytes, itemsize):
        """Whether submit_at of nbytes at address runs in this process, on the client lane (one
        host, small, aligned to its elements: the reduction works on that memory as an array)."""
        return self.lane is not None and nbytes <= self.lane.small_bytes and address % itemsize == 0

    def lane_kind(self, coll, dtype, op=None, root=None, compression=None, check_span=False):
        """The client lane's numbers for a request (run_here's `kind`), checked as the ring would
        check them; the same for every bridge, so a caller may keep them. check_span: the lane
        makes sure first that the memory is there (skip it only for a live tensor's: it takes
        about as long as a 1 KiB allreduce)."""
        key = (coll, dtype, op, root, compression, check_span)
        kind = self._lane_kinds.get(key)
        if kind is None:
            if coll not in ("allreduce", "broadcast"):
                raise ValueError("unicc: submit_at takes an allreduce or a broadcast, not %r" % (coll,))
            dt, o, _ = _ring_codes(coll, dtype, op, compression)
            kind = self._lane_kinds[key] = (_ring.COLLS[coll], dt, o, root or 0, check_span)
        return kind

    def run_here(self, kind, address, count):
        """The request of lane_kind() `kind` on `count` elements at `address`, run on the client
        lane (for a caller that asked runs_here()) before returning: None once done on every rank,
        else its failure (a UniccError naming the rank)."""
        if self._fatal is not None:  # the bridge is gone: this rank must end, though its lane still works
            raise self._fatal
        error = self.lane.run(kind, address, count)
        return None if error is None else UniccError(error)

    def _ring_full(self):
        self._ring.pump(None, 0.5)

    def _mapped_id(self, slab):
        if slab.unmapped:
            raise UniccError("unicc: rank %d: buffer %d is not mapped (this client unmapped it)" % (self.rank, slab.id))
        if self._mapping:
            self._wait_mapped(slab.id)
        return slab.id

    def _wait_mapped(self, sid):
        """Ring requests may overtake the socket's map message: a new slab's first waits for it."""
        ev = self._mapping.get(sid)
        if ev is not None and not ev.wait(self.timeout_s + MARGIN_S) and self._fatal is None:
            self._fail(BridgeError("unicc: rank %d: the bridge (pid %d) did not map slab %d within %.0f s"
                                   % (self.rank, self.pid, sid, self.timeout_s + MARGIN_S)))
        if self._fatal is not None:
            raise self._fatal

    # ---- elastic jobs (unicc.elastic)

    def membership_changed(self):
        """Collective: whether any rank saw the launcher replace this world (hosts joined, a rank lost)."""
        h = self._request({"t": "changed"}, "the membership check")
        h.wait()
        return bool(h.result.get("changed"))

    def reform(self):
        """Leaves this world and joins the next generation the launcher forms; rank and size change.
        Requests still pending on the old world fail. Bounded: the launcher ends a round in
        UNICC_TIMEOUT_S and the bridge gives up on a formation after a few timeouts."""
        with self._state_lock:
            stale = list(self._pending.values())
            self._pending.clear()
        for h in stale:
            h._finish(UniccError("unicc: rank %d: %s was pending when the world was re-formed" % (self.rank, h.what)))
        h = self._request({"t": "reform"}, "re-forming the world")
        deadline = time.monotonic() + 4 * self.timeout_s + MARGIN_S
        while not h._wait_a_while(self):
            if time.monotonic() > deadline:
                self._fail(BridgeError("unicc: rank %d: the bridge (pid %d) did not re-form the world within %.0f s"
                                       % (self.rank, self.pid, 4 * self.timeout_s + MARGIN_S)))
        if h.exception() is not None:
            raise h.exception()
        self._placed(h.result)

    def _request(self, msg, what):
        req = next(self._ids)
        h = Handle(self, what)
        self._register(self._pending, req, h)
        self._send_or_fail(dict(msg, req=req))
        return h

    # ---- shutdown

    def close(self):
        """Waits for requests in flight (bounded), stops the bridge and releases the shared memory."""
        if self._closing:
            return
        self._closing = True
        atexit.unregister(self.close)
        if _raising.ending():
            # Failing: leave at once. Our exit closes the connection, which ends the bridge after
            # us, so the launcher names this rank's exit as the failure, not its bridge's; told
            # first, the bridge adds no line of its own to our traceback.
            try:
                self._send({"t": "leaving"})
            except OSError:
                pass
            self._unlink_unmapped()
            if self._dir:
                shutil.rmtree(self._dir, ignore_errors=True)
            return
        if self._fatal is None:
            try:
                self._send({"t": "close"})
            except OSError:
                pass
        else:  # dead, refusing or stuck: nothing to wait for
            self._proc.kill()
        self._stop_process()
        try:
            self._sock.close()
        except OSError:
            pass
        if self._ring is not None:
            self._ring.reap()  # what the bridge finished before it exited
        self._fail(UniccError("unicc: rank %d: the bridge was closed while this request was pending" % self.rank))
        self._unlink_unmapped()
        for s in self._slabs:
            s.views.clear()
            try:
                s.buffer.close()
            except BufferError:  # a view still exported by the caller keeps this mapping until exit
                pass
        self._slabs.clear()
        if self.lane is not None:
            self.lane.close()
        if self._ring is not None:
            self._ring.close()

    def _unlink_unmapped(self):
        for sid in list(self._unmapped):
            self._unlink(self._unmapped.pop(sid, None))

    def _stop_process(self):
        try:
            self._proc.wait(timeout=self.timeout_s + MARGIN_S)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)


def prove_token(token, challenge):
    """HMAC-SHA256 answer to the bridge's challenge (the construction of src/ts/auth.ts, purpose "bridge")."""
    mac = hmac.new(token.encode(), b"unicc-auth-v1/bridge/", hashlib.sha256)
    mac.update(challenge)
    return mac.hexdigest()
