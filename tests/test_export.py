"""Export path: one validated ONNX graph that reproduces torch and describes itself."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from ccscore_export.detector_export import export_detector, save_checkpoint, validation_batches
from ccscore_export.model import ArtifactDetector, ChromaStatistics, DetectorConfig, EncoderConfig
from ccscore_export.onnx_export import OPSET, PHASES, PROBS, QUALITY, ExportValidationError, validate_graph

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
    assert [o.name for o in model.graph.output] == ["probs", "quality", "phases"]
    meta = {p.key: p.value for p in model.metadata_props}
    assert REQUIRED_METADATA <= set(meta)
    assert json.loads(meta["labels"]) == ["clean", "jpeg", "webp", "avif", "jxl"]
    assert json.loads(meta["tiling_params"])["max_tiles"] >= 1


ENCODERS = {
    "all frequencies": EncoderConfig(),
    "shipped subset": EncoderConfig(frequencies=((0, 1, 3, 5, 7), ())),
    "with chroma": EncoderConfig(frequencies=((0, 1, 3, 5, 7), ()), chroma=True),
}


@pytest.mark.parametrize("encoder", ENCODERS.values(), ids=ENCODERS.keys())
def test_round_trip_matches_torch_on_random_and_real_tiles(tmp_path, image_files, encoder):
    """export -> validate -> score: the runtime's tile probabilities equal torch's on the same tiles."""
    from ccscore import Scorer

    from conftest import draw_art

    torch.manual_seed(1)
    model = ArtifactDetector(DetectorConfig(encoder=encoder))
    with torch.no_grad():  # standardise as training does, so the untrained head's outputs vary by tile
        tiles = torch.from_numpy(np.array(draw_art(5, (512, 512)))).unfold(0, 128, 128).unfold(1, 128, 128)
        feats = model.encoder(tiles.reshape(-1, 3, 128, 128).permute(0, 2, 3, 1).contiguous())
        model.head.feature_mean.copy_(feats.mean(0))
        model.head.feature_std.copy_(feats.std(0) + 1e-3)
    save_checkpoint(tmp_path / "m.pt", model)
    diffs = export_detector(tmp_path / "m.pt", tmp_path / "m.onnx")
    assert diffs["probs"] <= PROBS.tolerance and diffs["quality"] <= QUALITY.tolerance
    assert diffs["phases"] <= PHASES.tolerance

    scorer = Scorer(tmp_path / "m.onnx", device="cpu")
    tiles, _ = scorer.tile(image_files["jpeg"])
    onnx_out = scorer.run(tiles.pixels)
    with torch.no_grad():
        torch_probs, torch_quality, torch_phases = model.eval()(torch.from_numpy(tiles.pixels))
    onnx_probs = onnx_out.probs
    assert np.abs(onnx_probs - torch_probs.numpy()).max() <= 1e-4
    assert np.abs(onnx_out.quality - torch_quality.numpy()[:, 0]).max() <= QUALITY.tolerance
    assert np.abs(onnx_out.phases - torch_phases.numpy()).max() <= PHASES.tolerance
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


def test_chroma_statistics_see_subsampled_chroma_even_at_quality_100():
    """JPEG q100 with 4:2:0 leaves luma untouched but halves chroma; the decoder's upsampling nulls every
    other third difference of chroma. Clean art and 4:4:4 show no such null."""
    import io

    from PIL import Image

    from conftest import draw_art

    stats = ChromaStatistics(128)

    def strongest_contrast(rgb: np.ndarray) -> float:
        tile = torch.from_numpy(np.ascontiguousarray(rgb[64:192, 64:192])).permute(2, 0, 1)[None].float()
        return float(stats(tile)[0, :20].min())  # phase contrasts: <= 0, about 0 without a 2-periodic null

    def jpeg(art: Image.Image, subsampling: int) -> np.ndarray:
        buf = io.BytesIO()
        art.save(buf, "JPEG", quality=100, subsampling=subsampling)
        return np.asarray(Image.open(buf).convert("RGB"))

    for seed in range(3):
        art = draw_art(seed, (256, 256))
        assert strongest_contrast(np.asarray(art)) > -0.3
        assert strongest_contrast(jpeg(art, 0)) > -0.3  # 4:4:4
        assert strongest_contrast(jpeg(art, 2)) < -0.6  # 4:2:0


@pytest.mark.parametrize("frequencies", [(), (0, 1, 3, 5, 7)])
def test_phase_statistics_ignore_brightness(frequencies):
    """A constant added to luma moves only the DC coefficient (every other DCT basis sums to zero), which the
    statistics leave out: features and phase scores stay the same. Any DC leaking into a sum (energy, quadrant
    means, per-phase shares) moves them."""
    from ccscore_export.model import PhaseStatistics

    torch.manual_seed(0)
    y = (torch.rand(3, 1, 128, 128) - 0.5) * 4  # coefficients near the thresholds, DC included
    for block, fs in ((8, frequencies), (4, ())):
        stats = PhaseStatistics(block, (1.0, 3.0), 20.0, fs or None)
        features, phases = stats(y)
        brighter_features, brighter_phases = stats(y + 37.0)
        assert features.shape[1] == stats.feature_size
        assert torch.allclose(features, brighter_features, atol=2e-3), (block, fs)
        assert torch.allclose(phases, brighter_phases, atol=2e-4), (block, fs)
