# The bridge's door: started by hand with UNICC_JOB_TOKEN set, it must refuse a client that cannot
# prove the token, refuse garbage and oversize frames, and then still let the right client in. Then,
# for an admitted client: buffer id 0 (the command ring's client memory) is refused in map and mapfd.
# Needs no torch: the client package alone.
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

import unicc
from unicc._node import bridge_js

token = os.environ["UNICC_JOB_TOKEN"]
d = tempfile.mkdtemp(prefix="unicc-bridge-")
path = os.path.join(d, "s")


def start_bridge():
    return subprocess.Popen([shutil.which("node"), bridge_js(), "--socket", path])


proc = start_bridge()


def frame(obj):
    body = json.dumps(obj).encode()
    return struct.pack(">I", len(body)) + body


def recv(s):
    head = s.recv(4, socket.MSG_WAITALL)
    if len(head) < 4:
        return None
    (n,) = struct.unpack(">I", head)
    return json.loads(s.recv(n, socket.MSG_WAITALL))


def admitted():
    s, hello = dial()
    s.sendall(frame({"t": "auth", "answer": unicc.prove_token(token, bytes.fromhex(hello["challenge"]))}))
    return s, recv(s)


def dial():
    for _ in range(500):
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(path)
            s.settimeout(10)
            return s, recv(s)
        except (FileNotFoundError, ConnectionRefusedError):
            s.close()
            time.sleep(0.02)
    raise SystemExit("the bridge never listened")


def outcome(s, payload):
    s.sendall(payload)
    reply = recv(s)
    rest = recv(s)  # the bridge hangs up after refusing
    s.close()
    return reply, rest


s, hello = dial()
assert hello["t"] == "hello" and hello["auth"] is True, hello
print("NO-TOKEN", *outcome(s, frame({"t": "auth", "answer": ""})), flush=True)
s, hello = dial()
wrong = unicc.prove_token(token + "x", bytes.fromhex(hello["challenge"]))
print("WRONG-TOKEN", *outcome(s, frame({"t": "auth", "answer": wrong})), flush=True)
s, hello = dial()
print("OVERSIZE", *outcome(s, struct.pack(">I", 0xFFFFFFF0) + b"x" * 16), flush=True)
s, hello = dial()
print("BIG", *outcome(s, struct.pack(">I", 200000) + b"x" * 70000), flush=True)
s, hello = dial()
print("GARBAGE", *outcome(s, struct.pack(">I", 5) + b"\x00\x01{[x"), flush=True)
s, hello = dial()
print("SKIP-AUTH", *outcome(s, frame({"t": "op", "req": 1, "coll": "barrier"})), flush=True)
s, welcome = admitted()
print("RIGHT-TOKEN", welcome, flush=True)
s.sendall(frame({"t": "close"}))
print("EXIT", proc.wait(timeout=20), "SOCKET-LEFT", os.path.exists(path), "DIR-LEFT", os.path.exists(d), flush=True)
for what, msg in (("MAP-ZERO", {"t": "map", "id": 0, "path": "/dev/shm/unicc-door", "bytes": 4096}),
                  ("MAPFD-ZERO", {"t": "mapfd", "id": 0, "pid": os.getpid(), "fd": 0, "bytes": 4096})):
    os.mkdir(d, 0o700)  # the bridge removed it on admitting the last client
    proc = start_bridge()
    s, welcome = admitted()
    print(what, *outcome(s, frame(msg)), "EXIT", proc.wait(timeout=20), flush=True)
