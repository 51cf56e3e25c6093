"""ONNX export of a torch model, for evaluation with onnxruntime on unicc ranks (@unicc/eval-onnx):

    from unicc.torch.onnx import export_onnx
    export_onnx(model, x[:2], "digits.onnx")   # then: unicc run -np 4 -- unicc-eval --model digits.onnx ...

Imported on its own (not by `import unicc.torch`): it needs the `onnx` and `onnxscript` packages
that torch's exporter uses.
"""

import torch


def export_onnx(model, sample, path, input_name="x", output_name="logits"):
    """Writes `model`'s forward pass (in eval mode) to `path` as one self-contained ONNX file whose
    first axis (the batch) takes any size. `sample` is an example input with at least 2 rows (the
    exporter treats a batch of 1 as a constant). Returns `path`."""
    if sample.shape[0] < 2:
        raise ValueError("export_onnx: give a sample of at least 2 rows, so the batch axis stays dynamic")
    model.eval()
    torch.onnx.export(
        model,
        (sample,),
        path,
        input_names=[input_name],
        output_names=[output_name],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        external_data=False,  # weights inside the file: one file to ship to every rank
        verbose=False,
    )
    return path
