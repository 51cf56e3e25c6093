"""Runs inside in-container.sh: prints what this rank can see ("SEES <json>": /dev/shm's entries,
whether HOST_PATH exists, the mount points, where `unicc` was imported from), then runs the
worker named next with the arguments after it, as its own __main__."""

import json
import os
import runpy
import sys

import unicc

host_path, worker = sys.argv[1], sys.argv[2]
mounts = sorted({line.split(" ")[4] for line in open("/proc/self/mountinfo")})
print("SEES " + json.dumps({"shm": sorted(os.listdir("/dev/shm")), "host_path": os.path.exists(host_path),
                            "mounts": mounts, "unicc": os.path.dirname(unicc.__file__)}), flush=True)
sys.argv = sys.argv[2:]
sys.path.insert(0, os.path.dirname(worker))
runpy.run_path(worker, run_name="__main__")
