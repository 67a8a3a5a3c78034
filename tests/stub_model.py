"""A stub detector built with `onnx.helper`, shared by the folder-run tests and the benchmarks.

Same input/output/metadata contract as the real detector, a small convolution so a session run costs a few
milliseconds: it exercises the pipeline, not the classifier. Its label depends on the tiles' mean red level
(low red: flagged; then green: jpeg, blue: avif, else webp), so a dataset of random colours gets a mix of
clean and flagged images. Its labels are the current model's five by default; any list that starts
clean, jpeg, webp works (e.g. the three of models up to 0.6.0). Benchmarks import it with `tests/` on
sys.path; it is test tooling, not part of the runtime package.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

STUB_LABELS = ("clean", "jpeg", "webp", "avif", "jxl")


def build_stub_model(path: Path, labels: tuple[str, ...] = STUB_LABELS) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n = len(labels)
    # Logits from the mean colour: clean r/8 - 16, jpeg g/16 - 8, webp 0, avif b/16 - 8, any further label -1.
    color_w = np.zeros((3, n), np.float32)
    color_b = np.full(n, -1.0, np.float32)
    color_w[0, 0], color_w[1, 1], color_b[:3] = 1 / 8, 1 / 16, (-16, -8, 0)
    if n > 3:
        color_w[2, 3], color_b[3] = 1 / 16, -8
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.05, (8, 3, 5, 5)).astype(np.float32), "conv_w"),
        numpy_helper.from_array(np.zeros((8, n), np.float32) + 1e-3, "feat_w"),
        numpy_helper.from_array(color_w, "color_w"),
        numpy_helper.from_array(color_b, "color_b"),
        numpy_helper.from_array(np.array([[0.0], [0.0], [100 / 255]], np.float32), "q_w"),
        numpy_helper.from_array(np.array([0.0], np.float32), "q_b"),
    ]
    nodes = [
        helper.make_node("Cast", ["pixels"], ["x"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["x"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "conv_w"], ["conv"], pads=[2, 2, 2, 2]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["feat"]),
        helper.make_node("GlobalAveragePool", ["nchw"], ["cgap"]),
        helper.make_node("Flatten", ["cgap"], ["color"]),
        helper.make_node("Gemm", ["color", "color_w", "color_b"], ["color_logits"]),
        helper.make_node("MatMul", ["feat", "feat_w"], ["feat_logits"]),
        helper.make_node("Add", ["color_logits", "feat_logits"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
        helper.make_node("Gemm", ["color", "q_w", "q_b"], ["quality"]),
    ]
    graph = helper.make_graph(
        nodes, "stub",
        [helper.make_tensor_value_info("pixels", TensorProto.UINT8, ["batch", 128, 128, 3])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", n]),
         helper.make_tensor_value_info("quality", TensorProto.FLOAT, ["batch", 1])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = {"name": "stub", "version": "0", "labels": json.dumps(list(labels)), "tile_size": "128",
            "tiling": "content", "tiling_params": json.dumps({"max_tiles": 8}), "aggregation": "mean",
            "threshold": "0.5", "outputs": json.dumps(["probs", "quality"])}
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
