"""What the bridge and the `unicc` command run on: a Node.js 20+ executable (UNICC_NODE, else `node`
on PATH) and @unicc/core's JavaScript (the copy a wheel carries in unicc/_js, else the checkout's)."""

import os
import re
import shutil
import subprocess

MIN_NODE_MAJOR = 20
_HERE = os.path.dirname(os.path.abspath(__file__))


class NodeNotFound(RuntimeError):
    """No usable Node.js: the message says which was tried and what to do."""


def js_root():
    """The folder laid out as the npm package @unicc/core: the wheel's unicc/_js, or the checkout's
    packages/core-native (this file is packages/core-native/python/unicc/_node.py)."""
    bundled = os.path.join(_HERE, "_js")
    return bundled if os.path.isdir(bundled) else os.path.dirname(os.path.dirname(_HERE))


def bridge_js():
    """dist/bridge.js, the bridge process's entry."""
    return os.path.join(js_root(), "dist", "bridge.js")


def find_node(env=None):
    """The Node.js to run: UNICC_NODE, else `node` on PATH; raises NodeNotFound unless it is 20 or newer."""
    env = os.environ if env is None else env
    given = env.get("UNICC_NODE")
    node = given or shutil.which("node", path=env.get("PATH"))
    advice = "install Node.js %d or newer and put `node` on PATH, or set UNICC_NODE to its path" % MIN_NODE_MAJOR
    if not node:
        raise NodeNotFound("no `node` on PATH (unicc's core runs in Node.js): " + advice)
    try:
        version = subprocess.run([node, "--version"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, timeout=30, check=False).stdout.decode(errors="replace").strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        raise NodeNotFound("%s%s does not run (%s): %s" % (
            "UNICC_NODE=" if given else "", node, e.__class__.__name__ if isinstance(e, subprocess.TimeoutExpired) else e.strerror, advice)) from None
    m = re.match(r"v(\d+)\.", version)
    if not m or int(m.group(1)) < MIN_NODE_MAJOR:
        raise NodeNotFound("%s%s is Node.js %s, older than %d: %s" % (
            "UNICC_NODE=" if given else "", node, version or "(no version)", MIN_NODE_MAJOR, advice))
    return node
