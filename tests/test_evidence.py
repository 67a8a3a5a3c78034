"""Image-level evidence: grid agreement across tile quadrants, "no evidence" answers, small images on their
own pixels. The grid statistics are fixed (not learned), so an untrained head shows them as well as a trained one."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from conftest import draw_art, run_cli

from ccscore import Scorer
from ccscore.evidence import image_evidence, own_quadrants
from ccscore.tiling import MIN_SIDE, content_tiles


def _jpeg(rgb: np.ndarray, quality: int, mode: str = "RGB") -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).convert(mode).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


@pytest.fixture(scope="module")
def scorer(tiny_model) -> Scorer:
    return Scorer(tiny_model, all_tiles=True)


def _evidence(scorer: Scorer, rgb: np.ndarray):
    tiles = content_tiles(rgb, 128, max_tiles=8)
    outputs = scorer.run(tiles.pixels)
    return image_evidence(outputs.phases, tiles.boxes, scorer.info.phase_grids, 128), tiles


@pytest.mark.parametrize("shift", [(0, 0), (3, 5), (6, 1)])
def test_jpeg_tiles_agree_on_the_grid_where_it_lies(scorer, shift):
    art = np.asarray(draw_art(4, (640, 512)))
    dy, dx = shift
    damaged = _jpeg(art, 75)[dy:, dx:]  # cropping moves the grid to (-dy, -dx) modulo 8
    evidence, tiles = _evidence(scorer, damaged)
    vote = evidence.grids[8]
    assert evidence.word == "grid" and vote.voting >= 12
    assert vote.agreement >= 0.75
    assert vote.offset == ((-dy) % 8, (-dx) % 8)


def test_clean_and_upscaled_art_do_not_agree_on_a_grid(scorer):
    art = draw_art(5, (512, 448))
    for image in (art, art.resize((1024, 896), Image.BICUBIC), art.convert("L").convert("RGB")):
        evidence, _ = _evidence(scorer, np.asarray(image))
        assert evidence.word == "grid"
        assert evidence.grids[8].agreement < 0.5, evidence


@pytest.mark.parametrize("name,rgba", [
    ("white", np.full((300, 300, 4), 255, np.uint8)),
    ("one colour", np.dstack([np.full((256, 320, 3), (40, 90, 200), np.uint8), np.full((256, 320), 255, np.uint8)])),
    ("transparent", np.zeros((200, 240, 4), np.uint8)),
    ("one pixel high", np.dstack([np.random.default_rng(0).integers(0, 256, (1, 900, 3)).astype(np.uint8),
                                   np.full((1, 900), 255, np.uint8)])),
])
def test_blank_and_flat_images_are_clean_with_no_evidence(tmp_path, tiny_model, name, rgba):
    path = tmp_path / "x.png"
    Image.fromarray(rgba, "RGBA").save(path)
    out = run_cli(str(path), "--jsonl", "--model", str(tiny_model))
    record = json.loads(out.stdout)
    assert out.returncode == 0, out.stderr
    assert record["label"] == "clean" and record["quality"] is None
    assert record["evidence"] == "none"
    readable = run_cli(str(path), "--model", str(tiny_model))
    assert readable.stdout.startswith(f"{path}: clean, no evidence  (clean 1.000")


def test_small_images_are_tiled_from_their_own_pixels():
    rng = np.random.default_rng(1)
    small = rng.integers(0, 256, (50, 70, 3)).astype(np.uint8)
    tiles = content_tiles(small, 128)
    assert tiles.boxes == [(0, 0, 70, 50)]
    tile = tiles.pixels[0]
    assert np.array_equal(tile[:50, :70], small)
    # The rest repeats the last row and column: nothing mirrored, no structure the image lacks.
    assert np.array_equal(tile[50:, :70], np.broadcast_to(small[-1], (78, 70, 3)))
    assert np.array_equal(tile[:, 70:], np.broadcast_to(tile[:, 69:70], (128, 58, 3)))
    assert len(content_tiles(small[: MIN_SIDE - 1], 128).boxes) == 0


def test_long_thin_images_get_windows_along_their_length():
    strip = np.asarray(draw_art(6, (1500, 60)))
    tiles = content_tiles(strip, 128, max_tiles=4)
    assert len(tiles.boxes) == 4
    assert all(b[3] - b[1] == 60 and b[2] - b[0] == 128 for b in tiles.boxes)
    assert len({b[0] for b in tiles.boxes}) == 4


def test_padded_quadrants_do_not_vote():
    own = own_quadrants([(0, 0, 128, 128), (0, 0, 70, 50), (0, 0, 40, 30), (0, 0, 128, 100)], 128, 8)
    assert own.tolist() == [[True] * 4, [True, False, False, False], [False] * 4, [True, True, True, True]]


def test_results_carry_evidence_in_every_format(tmp_path, tiny_model, image_files):
    out = run_cli(str(image_files["jpeg"]), "--jsonl", "--model", str(tiny_model))
    record = json.loads(out.stdout)
    assert record["evidence"] in ("grid", "weak")
    assert set(record["grid_agreement"]) == {"8x8", "4x4"}
    csv_path = tmp_path / "s.csv"
    out = run_cli(str(image_files["jpeg"]), "--output", str(csv_path), "--model", str(tiny_model))
    assert out.returncode == 0, out.stderr
    assert "evidence" in csv_path.read_text().splitlines()[0]


def _outputs_voting(phase_of_tile: list[int], n_labels: int, lossy: float = 0.95):
    """Tile outputs whose quadrants all peak at the given 8x8 (and matching 4x4) phase, tiles at origin 0;
    P(jpeg) = `lossy`, the rest clean, of a model with `n_labels` labels."""
    from ccscore.scorer import TileOutputs

    n = len(phase_of_tile)
    phases = np.full((n, 4 * (64 + 16)), 0.5, np.float32)
    for k, p in enumerate(phase_of_tile):
        r, s = divmod(p, 8)
        phases[k, :256].reshape(4, 64)[:, p] = 0.9
        phases[k, 256:].reshape(4, 16)[:, (r % 4) * 4 + s % 4] = 0.9
    probs = np.zeros((n, n_labels), np.float32)
    probs[:, :2] = 1 - lossy, lossy
    return TileOutputs(probs, np.full(n, 80.0, np.float32), phases)


def test_the_grid_gate_keeps_agreeing_damage_and_drops_scattered_phases(tiny_model):
    scorer = Scorer(tiny_model, all_tiles=True)
    boxes = [(128 * k, 0, 128 * k + 128, 128) for k in range(6)]  # origins on the 8-grid: local phase = image phase
    agreeing, _ = scorer.judge(_outputs_voting([9] * 6, len(scorer.labels)), boxes)
    scattered, evidence = scorer.judge(_outputs_voting([0, 9, 18, 27, 36, 45], len(scorer.labels)), boxes)
    assert evidence.grids[8].voting == 24 and evidence.grids[8].agreement == pytest.approx(3 / 23)
    assert agreeing["jpeg"] > 0.9 and agreeing["clean"] < 0.1  # the tiles' call stands
    assert scattered["clean"] > 0.5 and scattered["jpeg"] < 0.5  # same tiles, no common grid: clean
    assert sum(scattered.values()) == pytest.approx(1.0)


def test_a_small_image_is_weak_evidence_with_no_agreement_figure(tmp_path, tiny_model):
    path = tmp_path / "emote.png"
    Image.fromarray(np.asarray(draw_art(7, (70, 50)))).save(path)
    record = json.loads(run_cli(str(path), "--jsonl", "--model", str(tiny_model)).stdout)
    assert record["evidence"] == "weak"  # one quadrant of its own pixels: no agreement to measure
    assert record["grid_agreement"] == {"4x4": None, "8x8": None}


def test_a_grid_gate_needs_native_resolution_tiles(tmp_path, tiny_model):
    import onnx

    from ccscore import ModelError

    model = onnx.load(str(tiny_model))
    for prop in model.metadata_props:
        if prop.key == "tiling":
            prop.value = "city96_fivecrop"
        if prop.key == "tiling_params":
            prop.value = "{}"
    onnx.save(model, str(tmp_path / "resized.onnx"))
    with pytest.raises(ModelError, match="grid gate needs the content tiling"):
        Scorer(tmp_path / "resized.onnx")
