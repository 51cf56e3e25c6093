#!/usr/bin/env bash
# Builds @tensorflow/tfjs-node's native addon offline, for the `tensorflow` backend:
#
#   build-tfjs-node.sh [cpu|gpu]    (gpu: @tensorflow/tfjs-node-gpu, from the CUDA build's wheel)
#
# tfjs-node's own install script downloads libtensorflow and a prebuilt addon from the internet
# (root package.json's allowScripts keeps npm from running it). Instead this takes the TensorFlow C
# library and the 14 headers the addon includes out of the tensorflow-cpu 2.21.0 wheel (tensorflow
# for gpu; from PyPI by tensorflow-wheel.sh), puts them where the package's binding.gyp looks (deps/lib, deps/include),
# and compiles the addon with node-pre-gyp and npm's own node-gyp against this Node's headers.
# 15-40 s here; nothing to do when already built (a stamp in deps/ names the wheel). What it puts in
# node_modules (about 815 MB) is gone after `npm ci`: run it again then.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
case "${1:-cpu}" in
  cpu) package=@tensorflow/tfjs-node dist=tensorflow-cpu ;;
  gpu) package=@tensorflow/tfjs-node-gpu dist=tensorflow ;;
  *) echo "usage: build-tfjs-node.sh [cpu|gpu]: cpu builds @tensorflow/tfjs-node, gpu @tensorflow/tfjs-node-gpu" >&2; exit 2 ;;
esac

pkg=$(cd "$here" && node -p "path.dirname(require.resolve('$package/package.json'))" 2>/dev/null) ||
  { echo "build-tfjs-node.sh: $package is not installed: run npm ci first" >&2; exit 1; }
addon=$(cd "$pkg" && node -p 'require("@mapbox/node-pre-gyp").find(require.resolve("./package.json"))')  # where tfjs-node loads it from
wheel=$(bash "$here/scripts/tensorflow-wheel.sh" "$dist")
stamp="$pkg/deps/unicc-built-from"
if [ -f "$addon" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$(basename "$wheel")" ]; then
  echo "$package addon already built from $(basename "$wheel")"
  exit 0
fi

rm -rf "$pkg/deps" "$pkg/lib" "$pkg/build"
mkdir -p "$pkg/deps/lib" "$pkg/deps/include"
# The C API (libtensorflow_cc.so.2 exports every TF_/TFE_ function the addon calls), the framework
# library it needs, and the transitive includes of tensorflow/c/c_api.h and eager/c_api.h.
python3 - "$wheel" "$pkg/deps" <<'EOF'
import os, shutil, sys, zipfile
wheel, deps = sys.argv[1:]
libs = ["libtensorflow_cc.so.2", "libtensorflow_framework.so.2"]
headers = [f"tensorflow/c/{h}.h" for h in
           ["c_api", "c_api_macros", "tf_attrtype", "tf_buffer", "tf_datatype", "tf_status", "tf_tensor", "tf_tstring"]]
headers += ["tensorflow/c/eager/c_api.h", "tensorflow/core/platform/ctstring.h",
            "tensorflow/core/platform/ctstring_internal.h", "tsl/platform/ctstring.h",
            "tsl/platform/ctstring_internal.h", "xla/tsl/c/tsl_status.h"]
with zipfile.ZipFile(wheel) as z:
    def put(member, dest):
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with z.open(member) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 24)
    for lib in libs:
        put(f"tensorflow/{lib}", f"{deps}/lib/{lib}")
    for h in headers:
        put(f"tensorflow/include/{h}", f"{deps}/include/{h}")
EOF
# binding.gyp links -ltensorflow -ltensorflow_framework; at run time the addon loads the libraries
# by their sonames (libtensorflow_cc.so.2, libtensorflow_framework.so.2) from deps/lib (its rpath).
ln -s libtensorflow_cc.so.2 "$pkg/deps/lib/libtensorflow.so"
ln -s libtensorflow_framework.so.2 "$pkg/deps/lib/libtensorflow_framework.so"

npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
node_prefix=$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")
pre_gyp=$(cd "$pkg" && node -p 'require.resolve("@mapbox/node-pre-gyp/bin/node-pre-gyp")')
# nodedir: this Node's own headers, so that node-gyp downloads none.
(cd "$pkg" && npm_config_node_gyp="$npm_dir/node_modules/node-gyp/bin/node-gyp.js" npm_config_nodedir="$node_prefix" \
  node "$pre_gyp" install --build-from-source --loglevel=warn)
node -e 'require(process.argv[1])' "$addon"  # fails here, not in a test, if a symbol is missing
basename "$wheel" >"$stamp"
echo "$package addon built: $addon"
