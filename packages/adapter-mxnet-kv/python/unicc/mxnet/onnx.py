"""ONNX export of a gluon model, for evaluation with onnxruntime on unicc ranks (@unicc/eval-onnx):

    from unicc.mxnet.onnx import export_onnx
    export_onnx(net, (784,), "digits.onnx")   # then: unicc run -np 4 -- unicc-eval --model digits.onnx ...

Imported on its own (not by `import unicc.mxnet`): it needs the `onnx` package, in a version whose
`onnx.mapping` MXNet 1.9.1's exporter still finds (1.14.1 in this repository's venv).
"""

import os
import tempfile

import mxnet as mx
import numpy as np


def export_onnx(net, sample_shape, path, dtype=np.float32):
    """Writes the hybridized gluon block `net` (already called once, so its graph exists) to
    `path` as an ONNX file taking [batch, *sample_shape] of `dtype` for any batch size. Returns `path`."""
    import onnx

    with tempfile.TemporaryDirectory() as tmp:
        prefix = os.path.join(tmp, "net")
        net.export(prefix)
        mx.onnx.export_model(prefix + "-symbol.json", prefix + "-0000.params", [(1,) + tuple(sample_shape)], [dtype], path,
                             dynamic=True, dynamic_input_shapes=[(None,) + tuple(sample_shape)])
    # MXNet lists the weights among the graph's inputs too; onnxruntime then treats them as
    # overridable inputs (no constant folding, a warning per weight). Keep only the real inputs.
    model = onnx.load(path)
    weights = {t.name for t in model.graph.initializer}
    real = [i for i in model.graph.input if i.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(real)
    onnx.save(model, path)
    return path
