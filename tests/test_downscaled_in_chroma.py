"""Damage downscaled after compression, found by a JPEG's block grid in chroma where luma's is too faint: a JPEG
quantises chroma far more coarsely than luma, so at 4:4:4, high qualities or on grainy art its blocks still show in
Cb and Cr (Scorer.find_downscaled's chroma judgement, ccscore.resized.chroma_grid_peak)."""

import numpy as np
import pytest
from PIL import Image

from conftest import cli_records_as_scored_here, compress, draw_art, resized, run_cli
from ccscore import scorer as scorer_module
from ccscore.resized import chroma_grid_peak, chroma_sharpness, grid_peak
from ccscore.scorer import CHROMA_GRID_MIN_PEAK, CHROMA_GRID_OVER_LUMA, DOWNSCALED_MIN_PEAK
from ccscore.quantisation import YCBCR
from ccscore.tiling import content_tiles

SIZE = (768, 640)
GRAIN = 3.0  # grey grain (luma only), levels: it leaves luma few smooth pixels to show the blocks in
# Test art with grain, JPEG 4:4:4 at a quality, then downscaled: luma's grid is too faint for the luma judgement,
# chroma's shows it (measured: chroma peaks 8.4-21.1, luma 2.6-9.3, chroma sharpness 0.75-0.95).
FOUND_IN_CHROMA = [(1, 80, 0.85, Image.BILINEAR), (1, 90, 0.75, Image.BICUBIC), (2, 80, 0.6, Image.LANCZOS),
                   (2, 90, 0.85, Image.BILINEAR)]


def grainy_art(seed: int) -> Image.Image:
    rgb = np.asarray(draw_art(seed, SIZE)).astype(np.float32)
    grain = np.random.default_rng(seed + 100).normal(0, GRAIN, rgb.shape[:2])[..., None]
    return Image.fromarray((rgb + grain).clip(0, 255).astype(np.uint8))


def jpeg_444(im: Image.Image, quality: int) -> Image.Image:
    return compress(im, "JPEG", quality, subsampling=0)


def peaks(rgb: np.ndarray):
    tiles = content_tiles(rgb, 128, max_tiles=8)
    return chroma_grid_peak(tiles.own(), tiles.boxes, CHROMA_GRID_MIN_PEAK), grid_peak(tiles.own(), tiles.boxes)


@pytest.fixture(scope="module")
def scorer():
    from ccscore import Scorer

    # without the resized-damage judge and the blocks it asks about (tests/test_resized_judge.py,
    # tests/test_downscaled_blocks.py), which find some of what these rules leave clean
    return Scorer(device="cpu", judge_resized=False)


@pytest.mark.parametrize("seed, quality, scale, kernel", FOUND_IN_CHROMA)
def test_the_grid_shows_in_chroma_at_the_downscaled_period_over_luma(seed, quality, scale, kernel):
    chroma, luma = peaks(resized(jpeg_444(grainy_art(seed), quality), scale, kernel))
    assert chroma is not None and abs(chroma.period - 8 * scale) < 0.1, chroma
    assert chroma.strength >= CHROMA_GRID_OVER_LUMA * luma.strength
    assert not luma.shows_grid(DOWNSCALED_MIN_PEAK)  # the luma judgement alone misses it


@pytest.mark.parametrize("seed, quality, scale, kernel", FOUND_IN_CHROMA)
def test_the_scorer_finds_it_in_chroma_and_says_so(scorer, monkeypatch, seed, quality, scale, kernel):
    damaged = resized(jpeg_444(grainy_art(seed), quality), scale, kernel)
    result = scorer.score(damaged)
    assert result.label == "jpeg" and result.evidence.word == "downscaled", (seed, quality, scale)
    assert result.quality is None and result.quality_source is None
    details = result.details()
    assert details["downscaled"]["plane"] == "chroma" and abs(details["downscaled"]["scale"] - scale) < 0.015
    assert details["chroma"]["sharpness"] < scorer_module.CHROMA_GRID_MAX_SHARPNESS
    # each rule is asked: without the chroma grid (or with chroma asked to stand far over luma) it is clean again
    monkeypatch.setattr(scorer_module, "CHROMA_GRID_MIN_PEAK", float("inf"))
    assert scorer.score(damaged).label == "clean"
    monkeypatch.setattr(scorer_module, "CHROMA_GRID_MIN_PEAK", CHROMA_GRID_MIN_PEAK)
    monkeypatch.setattr(scorer_module, "CHROMA_GRID_OVER_LUMA", 100.0)
    assert scorer.score(damaged).label == "clean"


def readings(scorer, rgb: np.ndarray):
    """What the judgement reads, on the scorer's own tiles: (mean tile P(clean), chroma sharpness, chroma peak
    strength, luma peak strength)."""
    tiles, _ = scorer.tile(rgb)
    own = tiles.own()
    lean = float(np.mean([tile.scores["clean"] for tile in scorer.score(rgb).tiles]))
    chroma = chroma_grid_peak(own, tiles.boxes, 0.0)
    return lean, chroma_sharpness(own), chroma.strength, grid_peak(own, tiles.boxes).strength


@pytest.mark.parametrize("seed, quality, scale, kernel", FOUND_IN_CHROMA[:2])
def test_every_limit_decides_at_its_boundary(scorer, monkeypatch, seed, quality, scale, kernel):
    """Each limit set just past the image's own reading turns the verdict back to clean; just short of it, found."""
    damaged = resized(jpeg_444(grainy_art(seed), quality), scale, kernel)
    lean, sharpness, chroma, luma = readings(scorer, damaged)
    for name, reading, past, short in (("CHROMA_MAX_TILE_CLEAN", lean, lean - 1e-4, lean + 1e-4),
                                       ("CHROMA_GRID_MAX_SHARPNESS", sharpness, sharpness, sharpness + 1e-4),
                                       ("CHROMA_GRID_MIN_PEAK", chroma, chroma * 1.001, chroma * 0.999),
                                       ("CHROMA_GRID_OVER_LUMA", chroma / luma, chroma / luma * 1.001,
                                        chroma / luma * 0.999)):
        with monkeypatch.context() as limits:
            limits.setattr(scorer_module, name, past)
            assert scorer.score(damaged).label == "clean", (name, reading)
            limits.setattr(scorer_module, name, short)
            assert scorer.score(damaged).evidence.downscaled_plane == "chroma", (name, reading)


def test_the_luma_peak_is_read_once_for_both_judgements(scorer, monkeypatch):
    """An image the luma judgement reads (its tiles lean under DOWNSCALED_MAX_TILE_CLEAN) and finds nothing in, which
    the chroma judgement then finds: luma's spectrum is read once."""
    seed, quality, scale, kernel = FOUND_IN_CHROMA[3]
    damaged = resized(jpeg_444(grainy_art(seed), quality), scale, kernel)
    assert readings(scorer, damaged)[0] <= scorer_module.DOWNSCALED_MAX_TILE_CLEAN
    calls = []
    monkeypatch.setattr(scorer_module, "grid_peak", lambda *a, **k: calls.append(1) or grid_peak(*a, **k))
    assert scorer.score(damaged).evidence.downscaled_plane == "chroma" and len(calls) == 1


def test_chroma_read_as_subsampled_keeps_its_own_evidence(scorer):
    """Where the chroma reads under CHROMA_MAX_SHARPNESS (a subsampling codec's), evidence "chroma" decides first:
    no grid, no plane."""
    shrunk = resized(compress(draw_art(4, SIZE), "JPEG", 90, subsampling=2), 0.9)
    result = scorer.score(shrunk)
    assert result.evidence.word == "chroma" and result.evidence.downscaled_plane is None
    assert result.details()["downscaled"] is None


def test_the_sharpness_limit_keeps_grain_resized_clean(scorer, monkeypatch):
    """Grey grain rounds to a little chroma noise, whose resize beats in chroma over a weak luma peak: where the head
    leans lossy, the chroma's sharpness (as sharp as luma's) keeps it clean where luma's own peak waives the drawn
    limit (a known weakness: docs/evidence.md)."""
    art = resized(grainy_art(3), 0.85, Image.BILINEAR)
    assert scorer.score(art).label == "clean"
    monkeypatch.setattr(scorer_module, "CHROMA_GRID_MAX_SHARPNESS", float("inf"))
    assert scorer.score(art).evidence.downscaled_plane == "chroma"


def blurred(plane: np.ndarray, sigma: float) -> np.ndarray:
    """A separable Gaussian blur of a float plane, edges repeated."""
    radius = max(1, int(3 * sigma + 0.5))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    for axis in (0, 1):
        padded = np.pad(plane, [(radius, radius) if k == axis else (0, 0) for k in (0, 1)], mode="edge")
        plane = sum(t * np.take(padded, np.arange(i, i + plane.shape[axis]), axis=axis) for i, t in enumerate(taps))
    return plane


def banded_sky_art(seed: int) -> np.ndarray:
    """Clean art an attacker found flagged: test art over a sky whose 8-bit steps fall every 4.5-7.2 px (red down,
    green across), luma sharpened alone (as photo editors do), a soft grey grain over it (which hides the steps in
    luma, not in chroma)."""
    rng = np.random.default_rng(seed + 1000)
    (w, h), (down, across) = SIZE, rng.uniform(4.5, 7.2, 2)
    yy, xx = np.mgrid[0:h, 0:w]
    r, g, b = rng.uniform(40, 120), rng.uniform(40, 120), rng.uniform(150, 250)
    sky = np.stack([r + yy / down, g + xx / across, b - yy / (2.5 * down)], -1).clip(0, 255).astype(np.uint8)
    ycc = np.asarray(draw_art(seed, SIZE, sky)).astype(np.float32) @ YCBCR.T
    ycc[..., 0] += rng.uniform(0.5, 1.5) * (ycc[..., 0] - blurred(ycc[..., 0], 1.0))
    grain = blurred(rng.normal(0, rng.uniform(2, 6), (h, w)), rng.uniform(0.3, 0.8)) * 1.5
    return (ycc @ np.linalg.inv(YCBCR).T + grain[..., None]).clip(0, 255).round().astype(np.uint8)


def test_a_gradients_steps_under_grain_are_not_taken_for_blocks(scorer, monkeypatch):
    """The steps comb chroma at their spacing and add up down the image (the peak's `drawn` high), where a JPEG's
    blocks step with the art: CHROMA_GRID_MAX_DRAWN keeps these clean (measured: 8 of 12 flagged without it, none with)."""
    arts = [banded_sky_art(seed) for seed in range(12)]
    flagged = sum(scorer.score(art).evidence.downscaled_plane == "chroma" for art in arts)
    monkeypatch.setattr(scorer_module, "CHROMA_GRID_MAX_DRAWN", float("inf"))
    unruled = sum(scorer.score(art).evidence.downscaled_plane == "chroma" for art in arts)
    assert flagged <= 1 and unruled >= 6, (flagged, unruled)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_clean_art_resized_stays_clean(scorer, seed):
    """Flat art shows no chroma grid at all; grainy art resized shows a resize's beat in chroma (from the rounding
    of its grain), but the head is sure of it or its chroma is as sharp as luma: clean."""
    for scale, kernel in ((0.6, Image.LANCZOS), (0.75, Image.BICUBIC), (0.85, Image.BILINEAR)):
        flat = resized(draw_art(seed, SIZE), scale, kernel)
        assert peaks(flat)[0] is None, (seed, scale)
        for art in (flat, resized(grainy_art(seed), scale, kernel)):
            result = scorer.score(art)
            assert result.label == "clean" and result.evidence.downscaled_plane is None, (seed, scale)


@pytest.mark.parametrize("workers", ["0", "2"])
def test_the_score_command_reports_the_plane_whichever_process_scores(tmp_path, monkeypatch, scorer, workers):
    monkeypatch.setenv("CCSCORE_THREADS", "1")
    seed, quality, scale, kernel = FOUND_IN_CHROMA[0]
    Image.fromarray(resized(jpeg_444(grainy_art(seed), quality), scale, kernel)).save(tmp_path / "shrunk.png")
    Image.fromarray(resized(grainy_art(seed), scale, kernel)).save(tmp_path / "clean.png")
    records = cli_records_as_scored_here(scorer, tmp_path, workers, "downscaled")
    shrunk = records["shrunk.png"]
    assert shrunk["evidence"] == "downscaled" and shrunk["label"] == "jpeg" and shrunk["quality"] is None
    assert shrunk["details"]["downscaled"]["plane"] == "chroma"
    assert records["clean.png"]["label"] == "clean" and records["clean.png"]["details"]["downscaled"] is None
    if workers == "0":
        lines = run_cli(str(tmp_path / "shrunk.png"), "--device", "cpu").stdout.splitlines()
        assert len(lines) == 1 and "grid seen downscaled (resized after compression)" in lines[0]
