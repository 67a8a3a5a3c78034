"""Issue #11's WebP line: a WebP's quality read from the quantiser steps its 4x4 luma blocks still sit on."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from ccscore import Scorer
from ccscore import scorer as scorer_module
from ccscore.webp_quality import WebPQualityEstimate, estimate_webp_quality, fit_terms, quality_of_quantiser
from conftest import BUNDLED_MODEL, draw_art


def webp_bytes(im: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "WEBP", quality=quality)
    return buf.getvalue()


def decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def libwebp_quantiser(quality: float) -> float:
    """libwebp's VP8SetSegmentParams for a segment of alpha 0, before its truncation to an integer."""
    q = quality / 100
    linear = q * 2 / 3 if q < 0.75 else 2 * q - 1
    return 127 * (1 - linear ** (1 / 3))


@pytest.mark.parametrize("quality", [1, 20, 30, 50, 74, 75, 76, 90, 95, 100])
def test_quality_of_quantiser_inverts_libwebps_scale(quality):
    assert quality_of_quantiser(libwebp_quantiser(quality)) == pytest.approx(quality, abs=1e-6)


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("quality", [35, 50, 65, 80, 95])
def test_a_pillow_webps_quality_is_read_from_its_steps(seed, quality):
    pixels = decoded(webp_bytes(draw_art(seed, (512, 384)), quality))
    read = estimate_webp_quality([pixels], [(0, 0)])
    assert read is not None and abs(read.quality - quality) <= 8


def test_the_macroblock_grid_offset_is_honoured_and_off_it_no_step_shows():
    pixels = decoded(webp_bytes(draw_art(1, (512, 384)), 50))
    whole = estimate_webp_quality([pixels], [(0, 0)])
    crop = pixels[2:, 1:]  # the image's grid now starts at row 14, column 15 of the crop
    on_grid = estimate_webp_quality([crop], [(14, 15)])
    assert on_grid is not None and on_grid.quantisers == whole.quantisers
    assert estimate_webp_quality([crop], [(0, 0)]) is None  # read 2 rows, 1 column off VP8's 4x4 grid


def test_clean_and_flat_art_show_no_step():
    assert estimate_webp_quality([np.asarray(draw_art(1, (512, 384)))], [(0, 0)]) is None
    assert estimate_webp_quality([np.full((128, 128, 3), 200, np.uint8)], [(0, 0)]) is None
    assert estimate_webp_quality([np.zeros((8, 8, 3), np.uint8)], [(0, 0)]) is None  # no whole macroblock


@pytest.fixture(scope="module")
def bundled() -> Scorer:
    return Scorer(BUNDLED_MODEL)


def test_a_webp_gets_its_quality_from_its_steps_with_details(bundled, tmp_path):
    path = tmp_path / "art.webp"
    path.write_bytes(webp_bytes(draw_art(3, (512, 384)), 40))
    result = bundled.score(path)
    assert result.label == "webp"
    assert result.quality_source == "steps" and abs(result.quality - 40) <= 8
    steps = result.to_dict(with_details=True)["details"]["webp_steps"]
    assert steps["quantisers"] and len(steps["macroblocks"]) == len(steps["quantisers"])


def test_the_steps_are_read_only_for_webp(bundled, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("steps read for an image not labelled WebP")

    monkeypatch.setattr(scorer_module, "estimate_webp_quality", refuse)
    jpeg, clean = tmp_path / "art.jpg", tmp_path / "art.png"
    draw_art(3, (512, 384)).save(jpeg, quality=50)
    draw_art(3, (512, 384)).save(clean)
    for path, label in ((jpeg, "jpeg"), (clean, "clean")):
        result = bundled.score(path)
        assert result.label == label and result.webp is None
        assert result.details()["webp_steps"] is None


def test_steps_far_from_the_heads_estimate_give_way_to_it(bundled, tmp_path, monkeypatch):
    path = tmp_path / "art.webp"
    path.write_bytes(webp_bytes(draw_art(3, (512, 384)), 90))
    head = bundled.score(path)
    monkeypatch.setattr(scorer_module, "estimate_webp_quality", lambda *a: None)
    assert bundled.score(path).quality_source == "model"  # no step shows: the head's estimate
    far = WebPQualityEstimate(5.0, (90,), (1,), 100, 0.1)  # a coarse step read off some edges of the art
    monkeypatch.setattr(scorer_module, "estimate_webp_quality", lambda *a: far)
    result = bundled.score(path)
    assert head.quality_source == "steps" and abs(head.quality - 90) <= 8
    assert result.quality_source == "model" and result.webp is far


def test_the_fit_recovers_a_line_and_names_its_groups():
    from ccscore_export.fit_webp_quality import group, least_absolute_deviations, least_squares

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3)) * [1, 10, 100]
    w = least_squares(x, x @ [2.0, -0.5, 0.01] + 7.0)
    assert np.allclose(w, [2.0, -0.5, 0.01, 7.0], atol=1e-3)
    # A few reads far off (a coarse step from the art) pull a least-squares line, not the least absolute one.
    y = x @ [2.0, -0.5, 0.01] + 7.0
    y[:20] += 40.0
    assert np.allclose(least_absolute_deviations(x, y), [2.0, -0.5, 0.01, 7.0], atol=0.1)
    assert least_squares(x, y)[-1] > 7.0 + 3
    assert [group(h) for h in ("pillow:pillow", "grey:pillow", "cwebp:cwebp:photo:sharp_yuv", "grey:cwebp:text")] \
        == ["pillow", "grey:pillow", "cwebp:photo", "grey:text"]


def test_the_quality_is_piecewise_linear_in_the_mean_quality_with_knots_at_the_samples_quartiles():
    from ccscore.webp_quality import fitted_quality
    from ccscore_export.fit_webp_quality import fit

    rng = np.random.default_rng(1)
    features = np.column_stack([rng.uniform(30, 95, 400), rng.uniform(0, 1, (400, 7))])
    # the steps' mean quality reads flatter than the truth above 60 and steeper below 45, say
    mean_quality = features[:, 0]
    truth = 20 + 0.6 * mean_quality + 0.5 * np.maximum(mean_quality - 45, 0) - 0.7 * np.maximum(mean_quality - 60, 0)
    truth += features[:, 1:] @ np.arange(1.0, 8.0)
    knots, weights = fit(features, truth)
    assert np.allclose(knots, np.quantile(features[:, 0], [0.25, 0.5, 0.75]))
    assert np.abs(fitted_quality(features, knots, weights) - truth).mean() < 0.6  # three knots for the truth's two
    assert fit_terms(features[0], knots).shape == (8 + 3,)
    assert np.allclose(fit_terms(np.array([[50.0] + [0] * 7]), np.array([40.0, 45.0, 60.0]))[0, 8:], [10, 5, 0])


@pytest.mark.parametrize("quality", [40, 85])
def test_a_cropped_webp_is_read_where_its_4x4_quadrants_vote_the_grid(bundled, quality):
    pixels = decoded(webp_bytes(draw_art(4, (512, 384)), quality))[2:, 1:]  # the grid now at row 2, column 3
    result = bundled.score(np.ascontiguousarray(pixels))
    assert result.label == "webp" and result.evidence.grids[4].offset == (2, 3)
    assert result.quality_source == "steps" and abs(result.quality - quality) <= 8


def test_the_steps_are_read_on_at_most_the_tables_pixels_whatever_the_tiling(monkeypatch):
    # A user model's tiling can hold 256 large tiles: reading all of them would cost ~12 bytes of memory a pixel.
    from ccscore.tiling import Tiles

    read = []
    monkeypatch.setattr(scorer_module, "estimate_webp_quality", lambda tiles, offsets: read.append(tiles))
    tiles = Tiles(np.zeros((40, 512, 512, 3), np.uint8), [(0, 512 * k, 512, 512 * (k + 1)) for k in range(40)])
    assert Scorer.webp_quality(tiles, None) is None
    assert read and all(0 < sum(t.shape[0] * t.shape[1] for t in r) <= scorer_module.TABLE_PIXELS for r in read)
    one_big = Tiles(np.zeros((2, 2048, 2048, 3), np.uint8), [(0, 0, 2048, 2048), (0, 2048, 2048, 4096)])
    read.clear()
    Scorer.webp_quality(one_big, None)
    assert [len(r) for r in read] == [1]  # the first tile is read whatever its size
