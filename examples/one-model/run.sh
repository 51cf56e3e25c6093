#!/usr/bin/env bash
# The one-model example end to end: the same digits classifier trained on 4 ranks through each
# adapter (torch, MXNet, Keras, tfjs), exported to ONNX, and scored on the digits test set by the
# same onnxruntime job on 4 ranks; Caffe (no maintained ONNX converter) trained in the bullseye root
# and scored by pycaffe on 4 ranks; then a table and a bar chart.
#   bash examples/one-model/run.sh [OUT_DIR (default examples/one-model/results)] [EPOCHS (default 2)]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
here="$root/examples/one-model"
out="${1:-$here/results}"; epochs="${2:-2}"
mkdir -p "$out"; out="$(cd "$out" && pwd)"  # absolute: the Caffe ranks see it at the same path
unicc=(node "$root/packages/core-native/dist/cli.js" run -np 4)
venv() { bash "$root/$1" | tail -1; }
torch_py="$(venv packages/adapter-torch-bridge/scripts/setup-venv.sh)"
mxnet_py="$(venv packages/adapter-mxnet-kv/scripts/setup-venv.sh)"
keras_py="$(venv packages/adapter-tf/scripts/setup-keras-venv.sh)"
bash "$root/packages/adapter-caffe/scripts/make-bullseye-root.sh" >/dev/null
plot_py="$(bash "$root/packages/core-native/scripts/python-venv.sh" "$here/.venv" "$here" -- "matplotlib==3.11.2" | tail -1)"
export PYTHONPATH="$here" OMP_NUM_THREADS=1 TF_CPP_MIN_LOG_LEVEL=2

: > "$out/results.jsonl"
# $1 framework, $2 the .onnx file its trainer leaves, then the trainer's command.
run() {
  local fw="$1" model="$2"; shift 2
  echo "== $fw: training on 4 ranks"
  "${unicc[@]}" "$@" 2>&1 | tee "$out/$fw-train.log" | grep -E "^\[0\] one-model:" || { echo "$fw: training failed, see $out/$fw-train.log"; return 1; }
  [ "$fw" = tfjs ] && "$keras_py" -m unicc.tensorflow.tfjs_onnx "$out/tfjs-model" "$model" >/dev/null 2>>"$out/$fw-train.log"
  echo "== $fw: evaluating $model on 4 ranks"
  "${unicc[@]}" -- node "$root/packages/eval-onnx/bin/unicc-eval.js" --model "$model" --data digits:test --json | tee "$out/$fw-eval.log" | grep -v "result {"
  local train eval
  train="$(sed -n 's/^\[0\] one-model: //p' "$out/$fw-train.log")"
  eval="$(sed -n 's/^\[0\] unicc-eval: result //p' "$out/$fw-eval.log")"
  echo "{\"train\": $train, \"eval\": $eval}" >> "$out/results.jsonl"
}
run torch "$out/torch.onnx" "$torch_py" "$here/train_torch.py" --epochs "$epochs" --out "$out/torch.onnx"
run mxnet "$out/mxnet.onnx" "$mxnet_py" "$here/train_mxnet.py" --epochs "$epochs" --out "$out/mxnet.onnx"
run keras "$out/keras.onnx" "$keras_py" "$here/train_keras.py" --epochs "$epochs" --out "$out/keras.onnx"
run tfjs "$out/tfjs.onnx" node "$here/train_tfjs.mjs" --epochs "$epochs" --out "$out/tfjs-model"

# Caffe: ranks in the bullseye root (OUT_DIR bound there at the same path); no ONNX converter, so
# pycaffe scores the weights on 4 ranks (unicc.caffe.evaluate) and prints unicc-eval's result fields.
in_root=(--bridge -- "$root/packages/adapter-caffe/scripts/in-root.sh" python3)
export UNICC_ROOT_BINDS="$out"
echo "== caffe: training on 4 ranks (bullseye root)"
"${unicc[@]}" "${in_root[@]}" "$here/train_caffe.py" --epochs "$epochs" --out "$out/caffe.caffemodel" 2>&1 | tee "$out/caffe-train.log" | grep -E "^\[0\] one-model:" || { echo "caffe: training failed, see $out/caffe-train.log"; exit 1; }
echo "== caffe: evaluating $out/caffe.caffemodel on 4 ranks with pycaffe"
"${unicc[@]}" "${in_root[@]}" "$here/eval_caffe.py" "$out/caffe.caffemodel" > "$out/caffe-eval.log" 2>&1 || { echo "caffe: evaluation failed, see $out/caffe-eval.log"; exit 1; }
echo "{\"train\": $(sed -n 's/^\[0\] one-model: //p' "$out/caffe-train.log"), \"eval\": $(sed -n 's/^\[0\] one-model-eval: //p' "$out/caffe-eval.log")}" >> "$out/results.jsonl"

"$plot_py" "$here/plot.py" "$out/results.jsonl" "$out/one-model.png" | tee "$out/table.md"
