"""A TensorFlow.js LayersModel to ONNX, for evaluation with onnxruntime on unicc ranks (@unicc/eval-onnx):

    python -m unicc.tensorflow.tfjs_onnx MODEL_DIR OUT.onnx

MODEL_DIR holds what tfjs's `model.save()` writes: model.json (Keras-format topology and a weights
manifest) and its weight files. Why this route: tfjs has no ONNX writer, and tfjs-node's SavedModel
support only loads and runs SavedModels (`tf.node.loadSavedModel`); it cannot write one from a
LayersModel. So the model is rebuilt here as the same Keras model, its weights loaded from the
tfjs files, and written by Keras's own ONNX export (tf2onnx). Keras 3 no longer reads the Keras 2
topology tfjs writes, so the rebuild covers Sequential models of Dense, Flatten, Dropout and
Activation layers (the examples' classifiers); anything else is refused with its class name.
"""

import json
import os
import sys

import numpy as np


def _layer(keras, cls, cfg):
    if cls == "Dense":
        return keras.layers.Dense(cfg["units"], activation=cfg.get("activation") or "linear", use_bias=cfg.get("use_bias", True))
    if cls == "Flatten":
        return keras.layers.Flatten()
    if cls == "Dropout":
        return keras.layers.Dropout(cfg["rate"])
    if cls == "Activation":
        return keras.layers.Activation(cfg["activation"])
    raise ValueError("tfjs_onnx: layer class %s is not covered (Dense, Flatten, Dropout, Activation)" % cls)


def load_tfjs(model_dir):
    """The tfjs LayersModel in `model_dir` as a Keras model with its weights."""
    import keras

    with open(os.path.join(model_dir, "model.json")) as f:
        art = json.load(f)
    topo = art["modelTopology"]
    topo = topo.get("model_config", topo)
    if topo["class_name"] != "Sequential":
        raise ValueError("tfjs_onnx: only Sequential models are covered, not %s" % topo["class_name"])
    layers = topo["config"]["layers"] if isinstance(topo["config"], dict) else topo["config"]
    first = layers[0]["config"]
    shape = first.get("batch_input_shape") or first.get("batch_shape")
    model = keras.Sequential([keras.Input(tuple(shape[1:]))] + [_layer(keras, l["class_name"], l["config"]) for l in layers])
    weights = []
    for group in art["weightsManifest"]:
        data = b"".join(open(os.path.join(model_dir, p), "rb").read() for p in group["paths"])
        at = 0
        for spec in group["weights"]:
            if spec.get("dtype", "float32") != "float32" or "quantization" in spec:
                raise ValueError("tfjs_onnx: weight %s is not plain float32" % spec["name"])
            n = int(np.prod(spec["shape"]))
            weights.append(np.frombuffer(data, np.float32, n, at).reshape(spec["shape"]))
            at += 4 * n
    model.set_weights(weights)  # tfjs writes them in layer order, kernel before bias, as Keras holds them
    model(np.zeros((1,) + tuple(shape[1:]), np.float32))  # Keras exports only models that have run
    return model


def export_onnx(model_dir, path):
    """Writes the tfjs LayersModel in `model_dir` to `path` as ONNX (batch axis of any size). Returns `path`."""
    load_tfjs(model_dir).export(path, format="onnx", verbose=False)
    return path


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m unicc.tensorflow.tfjs_onnx MODEL_DIR OUT.onnx")
    print(export_onnx(sys.argv[1], sys.argv[2]))
