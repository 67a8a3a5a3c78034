"""Export path: one validated ONNX graph that reproduces torch and describes itself."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from ccscore_export.detector_export import export_detector, save_checkpoint, validation_batches
from ccscore_export.model import ArtifactDetector
from ccscore_export.onnx_export import OPSET, PROBS, QUALITY, ExportValidationError, validate_graph

REQUIRED_METADATA = {"name", "version", "labels", "tile_size", "tiling", "tiling_params", "aggregation",
                     "producer", "producer_version", "commit", "training_data", "outputs"}


def test_graph_contract(tiny_model):
    model = onnx.load(str(tiny_model))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    (inp,) = model.graph.input
    assert inp.name == "pixels"
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param  # dynamic batch
    assert [d.dim_value for d in dims[1:]] == [128, 128, 3]
    assert [o.name for o in model.graph.output] == ["probs", "quality"]
    meta = {p.key: p.value for p in model.metadata_props}
    assert REQUIRED_METADATA <= set(meta)
    assert json.loads(meta["labels"]) == ["clean", "jpeg", "webp"]
    assert json.loads(meta["tiling_params"])["max_tiles"] >= 1


def test_round_trip_matches_torch_on_random_and_real_tiles(tmp_path, image_files):
    """export -> validate -> score: the runtime's tile probabilities equal torch's on the same tiles."""
    from ccscore import Scorer

    from conftest import draw_art

    torch.manual_seed(1)
    model = ArtifactDetector()
    with torch.no_grad():  # standardise as training does, so the untrained head's outputs vary by tile
        tiles = torch.from_numpy(np.array(draw_art(5, (512, 512)))).unfold(0, 128, 128).unfold(1, 128, 128)
        feats = model.encoder(tiles.reshape(-1, 3, 128, 128).permute(0, 2, 3, 1).contiguous())
        model.head.feature_mean.copy_(feats.mean(0))
        model.head.feature_std.copy_(feats.std(0) + 1e-3)
    save_checkpoint(tmp_path / "m.pt", model)
    diffs = export_detector(tmp_path / "m.pt", tmp_path / "m.onnx")
    assert diffs["probs"] <= PROBS.tolerance and diffs["quality"] <= QUALITY.tolerance

    scorer = Scorer(tmp_path / "m.onnx", device="cpu")
    tiles, _ = scorer.tile(image_files["jpeg"])
    onnx_probs, onnx_quality = scorer.run(tiles.pixels)
    with torch.no_grad():
        torch_probs, torch_quality = model.eval()(torch.from_numpy(tiles.pixels))
    assert np.abs(onnx_probs - torch_probs.numpy()).max() <= 1e-4
    assert np.abs(onnx_quality - torch_quality.numpy()[:, 0]).max() <= QUALITY.tolerance
    assert onnx_probs.std(axis=0).max() > 1e-2  # the comparison is not between constants


def test_failed_tolerance_is_an_error(tmp_path):
    torch.manual_seed(2)
    exported = ArtifactDetector()
    save_checkpoint(tmp_path / "a.pt", exported)
    export_detector(tmp_path / "a.pt", tmp_path / "a.onnx")
    other = ArtifactDetector()  # different head weights: the graph no longer matches this model
    with torch.no_grad():
        for p in other.head.parameters():
            p.mul_(5)
    with pytest.raises(ExportValidationError, match="max \\|diff\\|"):
        validate_graph(other, tmp_path / "a.onnx", validation_batches(128), outputs=[PROBS, QUALITY])
