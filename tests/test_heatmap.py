"""Heatmaps: every textured cell of the model's grid scored; lossy cells coloured, the rest left alone."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import BUNDLED_MODEL, run_cli

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("heatmap_cells", ROOT / "benchmarks" / "heatmap_cells.py")
heatmap_cells = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(heatmap_cells)
HALF, half_jpeg = heatmap_cells.HALF, heatmap_cells.half_jpeg


@pytest.fixture(scope="module")
def scorer():
    from ccscore import Scorer

    return Scorer(BUNDLED_MODEL)


def test_half_jpeg_colours_the_jpeg_half_and_leaves_the_clean_half(scorer):
    right = considered = 0
    labels = []
    for seed in range(4):
        heat = scorer.heatmap(half_jpeg(seed))
        # The JPEG half: its textured cells coloured (untextured ones cannot be judged); the clean half:
        # nothing coloured.
        cells_right, cells = heatmap_cells.cells_right(heat)
        right += cells_right
        considered += cells
        left_cells = heat.boxes[..., 2] <= HALF
        labels += heat.cell_labels()[left_cells & heat.coloured].tolist()
    assert right / considered >= 0.9, f"{right} of {considered} cells right"
    # Each cell is judged alone, without the image's grid agreement: a few JPEG cells read as another codec
    # (over 20 such images, 0.6.2: 2 of 450 called WebP; 0.7.4, with AVIF and JPEG XL labels too: 5 of 449).
    assert labels.count("jpeg") >= 0.95 * len(labels), labels


def test_cells_without_texture_are_not_scored_and_not_coloured(scorer):
    image = np.full((384, 512, 3), 200, np.uint8)
    image[:, :256] = np.asarray(half_jpeg(0))[:384, :256]  # texture on the left, one flat colour on the right
    heat = scorer.heatmap(image)
    flat = heat.boxes[..., 0] >= 256
    assert not heat.scored[flat].any() and np.isnan(heat.probs[flat]).all() and not heat.coloured[flat].any()
    assert heat.scored[~flat].all()
    assert heat.probs.shape == (3, 4, len(scorer.labels))
    np.testing.assert_allclose(np.nansum(heat.probs, axis=2)[heat.scored], 1.0, atol=1e-3)


def test_picture_is_downscaled_and_carries_a_legend(scorer):
    heat = scorer.heatmap(half_jpeg(1), display_side=512)
    assert heat.picture.mode == "RGB" and heat.picture.size[0] == 640  # the legend's minimum width
    assert 384 < heat.picture.size[1] < 384 + 120
    # The image's own decision is the score command's.
    assert heat.result.scores == scorer.score(half_jpeg(1)).scores


def test_small_image_cells_are_the_strategy_tiles(scorer):
    heat = scorer.heatmap(np.asarray(half_jpeg(2))[:100, :300])
    assert heat.boxes.shape[0] == 1 and heat.scored.all() and heat.boxes.shape[1] >= 1


def test_cli_writes_the_png_once_and_never_replaces_it(tmp_path):
    src = tmp_path / "half.png"
    half_jpeg(3).save(src)
    out = tmp_path / "heat.png"
    first = run_cli("heatmap", str(src), "-o", str(out), "--json")
    assert first.returncode == 0, first.stderr
    record = json.loads(first.stdout)
    assert record["path"] == str(src) and record["cells"]
    assert all(c["box"][2] <= HALF for c in record["cells"])  # only the JPEG half is coloured
    assert Image.open(out).format == "PNG"
    before = out.read_bytes()
    again = run_cli("heatmap", str(src), "-o", str(out))
    assert again.returncode == 2 and "exists" in again.stderr and out.read_bytes() == before
    missing = run_cli("heatmap", str(tmp_path / "nope.png"), "-o", str(tmp_path / "x.png"))
    assert missing.returncode == 1 and len(missing.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()
