"""What pyproject.toml cannot say about the `unicc` wheel: it carries @unicc/core's built JavaScript and
this platform's core in unicc/_js, laid out as npm installs them (package.json, bin/, dist/, and the
platform package under node_modules/, where the addon loader looks), so it is a platform wheel. It is
built for this machine's CPU, or for UNICC_WHEEL_CPU (x64 or arm64: the arm64 core is a cross build,
see packages/core-linux-arm64-gnu), and tagged linux_<arch>: `auditwheel repair` then gives it the
manylinux tag that the symbol versions the addon needs allow (glibc, libstdc++, libgcc), as
tests/packaging does; no Python extension inside, so one wheel serves every Python 3."""

import glob
import json
import os
import platform
import shutil
import subprocess

from setuptools import Distribution, setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.build_py import build_py

CORE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # packages/core-native
NPM_CPU = {"x86_64": "x64", "aarch64": "arm64"}
WHEEL_ARCH = {cpu: arch for arch, cpu in NPM_CPU.items()}
CPU = os.environ.get("UNICC_WHEEL_CPU") or NPM_CPU.get(platform.machine())


def platform_package_dir():
    libc, _ = platform.libc_ver()
    d = os.path.join(os.path.dirname(CORE), "core-linux-%s-gnu" % CPU)
    if platform.system() != "Linux" or libc != "glibc" or CPU not in WHEEL_ARCH or not os.path.isdir(d):
        raise SystemExit("unicc wheel: no platform package for %s %s %s (have: %s)" % (
            platform.system(), CPU or platform.machine(), libc or "no glibc", ", ".join(sorted(glob.glob(os.path.join(os.path.dirname(CORE), "core-*"))))))
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
        for f in ("package.json", "unicc_core.node", "libunicc_client_lane.so"):
            shutil.copy(os.path.join(pkg_dir, f), dest)


class PlatformDistribution(Distribution):
    """A platform wheel keeps everything at its root (platlib); setuptools would otherwise put a package
    without C extensions under unicc-*.data/purelib, where auditwheel rejects a shared library."""

    def has_ext_modules(self):
        return True


class PlatformWheel(bdist_wheel):
    def get_tag(self):
        return "py3", "none", "linux_%s" % WHEEL_ARCH[CPU]


setup(distclass=PlatformDistribution, cmdclass={"build_py": BuildWithJs, "bdist_wheel": PlatformWheel})
