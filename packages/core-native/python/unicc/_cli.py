"""The `unicc` command the wheel installs: @unicc/core's launcher (bin/unicc.js) on Node.js 20+, so that
`pip install unicc-torch` is followed by `unicc run -np 4 python train.py` with nothing from npm."""

import os
import sys

from ._node import NodeNotFound, find_node, js_root


def main():
    env = dict(os.environ)
    try:
        node = find_node(env)
    except NodeNotFound as e:
        sys.stderr.write("unicc: %s\n" % e)
        return 2
    env.setdefault("UNICC_PYTHON", sys.executable)  # the interpreter `unicc doctor` asks about frameworks
    cli = os.path.join(js_root(), "bin", "unicc.js")
    os.execve(node, [node, cli] + sys.argv[1:], env)
