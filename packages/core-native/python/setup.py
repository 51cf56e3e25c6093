"""What pyproject.toml cannot say about the `unicc` wheel: it carries @unicc/core's built JavaScript and
this platform's core in unicc/_js, laid out as npm installs them (package.json, bin/, dist/, and the
platform package under node_modules/, where the addon loader looks), so it is a platform wheel,
tagged with this machine's glibc (the addon needs that glibc or newer; no Python extension inside)."""

import glob
import json
import os
import platform
import shutil
import subprocess

from setuptools import setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.build_py import build_py

CORE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # packages/core-native
NPM_CPU = {"x86_64": "x64", "aarch64": "arm64"}


def platform_package_dir():
    libc, _ = platform.libc_ver()
    cpu = NPM_CPU.get(platform.machine())
    d = os.path.join(os.path.dirname(CORE), "core-linux-%s-gnu" % cpu)
    if platform.system() != "Linux" or libc != "glibc" or not os.path.isdir(d):
        raise SystemExit("unicc wheel: no platform package for %s %s %s (have: %s)" % (
            platform.system(), platform.machine(), libc or "no glibc", ", ".join(sorted(glob.glob(os.path.join(os.path.dirname(CORE), "core-*"))))))
    return d


def copy_dependencies(js):
    """@unicc/core's runtime dependencies (commander), as Node resolves them from the core, into the
    wheel's node_modules: the wheel has no npm to install them."""
    with open(os.path.join(CORE, "package.json")) as f:
        deps = json.load(f).get("dependencies", {})
    for name in deps:
        main = subprocess.run(["node", "-p", "require.resolve(%s)" % json.dumps(name)], cwd=CORE, check=True,
                              capture_output=True, text=True).stdout.strip()
        src = main[:main.rindex(os.sep + "node_modules" + os.sep)] + os.sep + os.path.join("node_modules", name)
        with open(os.path.join(src, "package.json")) as f:
            if json.load(f).get("dependencies"):
                raise SystemExit("unicc wheel: %s has dependencies of its own; copy them too" % name)
        shutil.copytree(src, os.path.join(js, "node_modules", name))


class BuildWithJs(build_py):
    def run(self):
        super().run()
        if not os.path.isfile(os.path.join(CORE, "dist", "bridge.js")):
            raise SystemExit("unicc wheel: %s/dist/bridge.js is missing; build @unicc/core first (npx turbo run build)" % CORE)
        js = os.path.join(self.build_lib, "unicc", "_js")
        shutil.rmtree(js, ignore_errors=True)
        shutil.copytree(os.path.join(CORE, "dist"), os.path.join(js, "dist"),
                        ignore=shutil.ignore_patterns("*.map", "*.d.ts", "*.d.cts"))
        shutil.copytree(os.path.join(CORE, "bin"), os.path.join(js, "bin"))
        shutil.copy(os.path.join(CORE, "package.json"), js)
        copy_dependencies(js)
        pkg_dir = platform_package_dir()
        # The same copy-and-check as `npm pack` of the platform package.
        subprocess.run(["node", os.path.join(CORE, "scripts", "stage-prebuilt.mjs"), pkg_dir], check=True)
        dest = os.path.join(js, "node_modules", "@unicc", os.path.basename(pkg_dir))
        os.makedirs(dest)
        for f in ("package.json", "unicc_core.node"):
            shutil.copy(os.path.join(pkg_dir, f), dest)


class PlatformWheel(bdist_wheel):
    def finalize_options(self):
        super().finalize_options()
        self.root_is_pure = False

    def get_tag(self):
        major, minor = platform.libc_ver()[1].split(".")[:2]
        return "py3", "none", "manylinux_%s_%s_%s" % (major, minor, platform.machine())


setup(cmdclass={"build_py": BuildWithJs, "bdist_wheel": PlatformWheel})
