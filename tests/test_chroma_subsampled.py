"""Damage resized after compression, found by its chroma: a subsampling codec's half-resolution chroma stays softer
than luma through a resize (Scorer.find_downscaled's chroma judgement, ccscore.resized.chroma_sharpness)."""

import numpy as np
import pytest
from PIL import Image

from conftest import cli_records_as_scored_here, compress, draw_art, resized, run_cli
from ccscore import scorer as scorer_module
from ccscore.resized import chroma_sharpness
from ccscore.scorer import CHROMA_MAX_SHARPNESS
from ccscore.tiling import content_tiles

SIZE = (768, 640)
# Test art the grid judgement misses at its defaults (JPEG q90 4:2:0, downscaled x0.9 bicubic): the chroma finds it.
GRIDLESS = (4, 90, 0.9)
CASES = [(seed, scale, kernel) for seed in (1, 2, 3, 4)
         for scale, kernel in ((0.6, Image.LANCZOS), (0.7, Image.BICUBIC), (0.85, Image.BILINEAR))]


def jpeg(im: Image.Image, quality: int, subsampling: int) -> Image.Image:
    """Pillow's subsampling: 0 is 4:4:4, 2 is 4:2:0."""
    return compress(im, "JPEG", quality, subsampling=subsampling)


def sharpness_of(rgb: np.ndarray):
    tiles = content_tiles(rgb, 128, max_tiles=8)
    return chroma_sharpness(tiles.own())


def test_subsampled_chroma_stays_softer_than_luma_through_a_resize_and_clean_colour_does_not():
    for seed, scale, kernel in CASES:
        art = draw_art(seed, SIZE)
        clean = sharpness_of(resized(art, scale, kernel))
        subsampled = sharpness_of(resized(jpeg(art, 70, 2), scale, kernel))
        full = sharpness_of(resized(jpeg(art, 70, 0), scale, kernel))
        # measured: clean 0.98-1.13, 4:2:0 0.42-0.62, 4:4:4 0.68-1.02 (at 0.55, 4:2:0 read up to 0.69: a downscale
        # by half leaves the half-resolution chroma little softer than luma)
        assert clean > 0.9, (seed, scale)
        assert subsampled < CHROMA_MAX_SHARPNESS - 0.05, (seed, scale)
        assert subsampled < full - 0.15, (seed, scale)  # the reading is the chroma's resolution, not the noise


def test_grey_art_and_art_of_faint_colour_give_no_reading():
    art = draw_art(1, SIZE)
    grey = art.convert("L").convert("RGB")
    assert sharpness_of(resized(jpeg(grey, 70, 2), 0.7)) is None
    # 3% of the colour over grey: chroma steps under CHROMA_EDGE, too few to read (CHROMA_MIN_STEP)
    faint = Image.blend(grey, art, 0.03)
    assert sharpness_of(resized(jpeg(faint, 70, 2), 0.7)) is None
    assert sharpness_of(resized(jpeg(art, 70, 2), 0.7)) is not None


@pytest.fixture()
def no_grid_judgement(monkeypatch):
    """The downscaled grid judgement never fires: what is found then is the chroma judgement's alone."""
    monkeypatch.setattr(scorer_module, "DOWNSCALED_MIN_PEAK", float("inf"))
    monkeypatch.setattr(scorer_module, "DOWNSCALED_RENAME_SURE_PEAK", float("inf"))


@pytest.fixture(scope="module")
def scorers():
    from ccscore import Scorer

    # without the resized-damage judge (tests/test_resized_judge.py), which finds some of what these leave clean
    return Scorer(device="cpu", judge_resized=False), Scorer(device="cpu", find_downscaled=False)


def test_a_resized_jpeg_the_grid_misses_is_found_by_its_chroma(scorers, no_grid_judgement):
    scorer, without = scorers
    found = 0
    for seed, scale, kernel in CASES:
        art = draw_art(seed, SIZE)
        damaged = resized(jpeg(art, 70, 2), scale, kernel)
        result = scorer.score(damaged)
        if result.evidence.word == "chroma":
            found += 1
            assert result.label == "jpeg" and result.quality is None
            assert result.to_dict(with_details=True)["details"]["chroma"]["sharpness"] < CHROMA_MAX_SHARPNESS
            assert without.score(damaged).evidence.word != "chroma"
        else:  # the model's own grid gate flagged it (as WebP, most): the chroma judgement is not asked
            assert result.label != "clean" and result.evidence.word == "grid", (seed, scale)
        clean = scorer.score(resized(art, scale, kernel))
        assert clean.label == "clean", (seed, scale)
    assert found >= 0.5 * len(CASES), found  # measured: 8 of 12


def test_the_chroma_judgement_leaves_alone_what_the_head_is_sure_is_clean(scorers, no_grid_judgement, monkeypatch):
    """Blurred and upscaled clean art with soft colour: the head is sure (mean tile P(clean) over
    CHROMA_MAX_TILE_CLEAN), the chroma reading is not asked."""
    scorer, _ = scorers
    damaged = resized(jpeg(draw_art(2, SIZE), 70, 2), 0.7)
    assert scorer.score(damaged).evidence.word == "chroma"
    monkeypatch.setattr(scorer_module, "CHROMA_MAX_TILE_CLEAN", -1.0)
    assert scorer.score(damaged).label == "clean"


def test_a_verdict_already_flagged_is_left_as_it_is(scorers, no_grid_judgement):
    """Downscaled JPEG test art the model names WebP itself (q80, x0.75): the chroma judgement asks only images
    still clean, so the WebP verdict stands (with its evidence)."""
    scorer, _ = scorers
    named_webp = resized(jpeg(draw_art(1, SIZE), 80, 2), 0.75)
    result = scorer.score(named_webp)
    assert result.label == "webp" and result.evidence.word == "grid"
    assert sharpness_of(named_webp) < CHROMA_MAX_SHARPNESS  # the chroma would have said JPEG


def test_a_strict_threshold_keeps_the_image_clean():
    """At threshold 0.99 (lossy only where P(clean) < 0.01) the proven scores (P(clean) cut to a tenth) still read
    clean: the record stays as it was, evidence and quality included."""
    from ccscore import Scorer

    seed, quality, scale = GRIDLESS
    damaged = resized(jpeg(draw_art(seed, SIZE), quality, 2), scale)
    assert Scorer(device="cpu").score(damaged).evidence.word == "chroma"
    strict = Scorer(device="cpu", threshold=0.99).score(damaged)
    assert strict.label == "clean" and strict.evidence.word != "chroma" and strict.evidence.chroma_sharpness is None


@pytest.mark.parametrize("workers", ["0", "2"])
def test_the_score_command_finds_it_by_its_chroma_whichever_process_scores(tmp_path, monkeypatch, scorers, workers):
    scorer, _ = scorers
    monkeypatch.setenv("CCSCORE_THREADS", "1")
    seed, quality, scale = GRIDLESS
    Image.fromarray(resized(jpeg(draw_art(seed, SIZE), quality, 2), scale)).save(tmp_path / "shrunk.png")
    Image.fromarray(resized(draw_art(seed, SIZE), scale)).save(tmp_path / "clean.png")
    records = cli_records_as_scored_here(scorer, tmp_path, workers, "chroma")
    shrunk = records["shrunk.png"]
    assert shrunk["evidence"] == "chroma" and shrunk["label"] == "jpeg" and shrunk["quality"] is None
    assert 0 < shrunk["details"]["chroma"]["sharpness"] < CHROMA_MAX_SHARPNESS
    assert records["clean.png"]["label"] == "clean" and records["clean.png"]["details"]["chroma"] is None
    if workers == "0":  # the readable line says how the damage was seen
        lines = run_cli(str(tmp_path / "shrunk.png"), "--device", "cpu").stdout.splitlines()
        assert len(lines) == 1 and "chroma subsampled (resized after compression)" in lines[0]
