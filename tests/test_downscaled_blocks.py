"""JPEG's 8x8 quantisation read back through a downscale (ccscore.downscaled_blocks) and the Scorer's use of it."""

import numpy as np
import pytest

from conftest import compress, draw_art
from test_downscaled import SIZE, downscaled
from ccscore import Scorer
from ccscore import scorer as scoring
from ccscore.downscaled_blocks import (MIN_WINDOWS, SPLIT_MAX_WINDOWS, BackAgreement, back_agreement, back_windows,
                                       candidate_periods, phase_shares)

SEED, QUALITY, SCALE = 3, 80, 0.8  # every window of this JPEG, downscaled, agrees at its period (8 x 0.8)


def jpeg_then_downscaled() -> np.ndarray:
    return downscaled(compress(draw_art(SEED, SIZE), "JPEG", QUALITY), SCALE, "bicubic")


# Downscaled to 216 x 270 px: two textured tiles (a window each), six windows over the whole image; of seed 4 all six
# agree, and the head calls it clean
SMALL_SIZE, SMALL_QUALITY, SMALL_SCALE, SMALL_SEED = (288, 360), 85, 0.75, 4


def small_jpeg_then_downscaled(seed: int = SMALL_SEED) -> np.ndarray:
    return downscaled(compress(draw_art(seed, SMALL_SIZE), "JPEG", SMALL_QUALITY), SMALL_SCALE, "bicubic")


def small_clean_downscaled(seed: int = SMALL_SEED) -> np.ndarray:
    return downscaled(draw_art(seed, SMALL_SIZE), SMALL_SCALE, "bicubic")


def tiles_of(rgb: np.ndarray):
    tiles, size = Scorer(device="cpu").tile(rgb)
    return tiles.own(), tiles.boxes, size


def test_a_jpegs_blocks_read_back_at_their_period_agree_and_clean_arts_do_not():
    own, boxes, size = tiles_of(jpeg_then_downscaled())
    read = back_agreement(own, boxes, size, 8 * SCALE)
    assert read.read == 8 and read.agreeing == 8 and read.agrees(1.0)
    for seed in (1, 2, 3):  # the clean art the JPEG was made of, downscaled alike
        clean = back_agreement(*tiles_of(downscaled(draw_art(seed, SIZE), SCALE, "bicubic")), 8 * SCALE)
        assert clean.read >= MIN_WINDOWS and clean.agreeing <= 4 and not clean.agrees(0.85)


def test_a_period_slightly_off_is_fitted_and_another_period_is_not():
    own, boxes, size = tiles_of(jpeg_then_downscaled())
    assert back_agreement(own, boxes, size, 8 * SCALE * 0.997).agrees(0.85)  # the drift fitted
    assert not back_agreement(own, boxes, size, 8 * SCALE * 1.02).agrees(0.85)
    assert not back_agreement(own, boxes, size, 5.0).agrees(0.85)


def test_phase_shares_count_near_zero_coefficients_at_each_phase():
    rng = np.random.default_rng(0)
    side, kept = 64, 6
    window = rng.normal(128, 30, (side + 8, side + 8))
    # quantise the blocks starting at (3, 5): their coefficients below `kept` become multiples of 64, most zero
    from ccscore.quantisation import DCT8 as basis

    for r in range(3, side, 8):
        for c in range(5, side, 8):
            block = basis @ window[r:r + 8, c:c + 8] @ basis.T
            block[:kept, :kept] = np.round(block[:kept, :kept] / 64) * 64
            window[r:r + 8, c:c + 8] = basis.T @ block @ basis
    shares = phase_shares(window, side - 8, kept)
    assert np.unravel_index(np.argmax(shares), shares.shape) == (3, 5)
    assert shares[3, 5] > 0.5 and np.median(shares) < 0.1


def gradient_tiles(step: float):
    """Eight 128 px tiles of a grey ramp rising `step` levels a pixel each way (8-bit, so a staircase)."""
    ramp = np.arange(512) * step
    rgb = np.repeat((np.add.outer(ramp, ramp) / 2 + 60)[:, :, None], 3, axis=2).clip(0, 255).astype(np.uint8)
    boxes = [(x, y, x + 128, y + 128) for y in (0, 128) for x in (0, 128, 256, 384)]
    return [rgb[y:y + 128, x:x + 128] for x, y, _, _ in boxes], boxes


@pytest.mark.parametrize("period", [4.2, 4.55, 4.7, 4.95, 5.12, 5.333, 5.5, 6.0, 6.4, 6.69, 7.0, 7.5])
def test_smooth_windows_do_not_vote(period):
    """A slow gradient is near zero at every phase nearly alike: its windows (whose argmax would be their first phase,
    voting for their own origins, which the tiles' lattice lines up) are not read. A staircase stepping every 5.33 px
    (in the band) ties whole rows of phases: those windows are not read, and the few left do not agree (without the tie
    rule, 8 of 8 at 5.333 and 6.69); nor does a steeper one's (6 of 8 at most, at 7.5)."""
    regions, boxes = gradient_tiles(0.125)
    assert back_agreement(regions, boxes, (512, 512), period).read <= 2
    for slope in (0.375, 0.5):
        regions, boxes = gradient_tiles(slope)
        assert not back_agreement(regions, boxes, (512, 512), period).agrees(scoring.BLOCKS_MIN_AGREEMENT), slope


def test_regions_too_small_to_read_give_no_agreement():
    small = np.zeros((60, 60, 3), np.uint8)
    assert back_windows([small], [(0, 0, 60, 60)], 6.0) == []
    read = back_agreement([small], [(0, 0, 60, 60)], (60, 60), 6.0)
    assert read == BackAgreement(6.0, 0, 0) and not read.agrees(0.5)
    assert not BackAgreement(6.0, MIN_WINDOWS - 1, MIN_WINDOWS - 1).agrees(0.85)
    assert BackAgreement(6.0, 7, 8).agrees(0.85) and not BackAgreement(6.0, 6, 8).agrees(0.85)


def test_a_split_region_gives_as_many_windows_as_fit(monkeypatch):
    from ccscore import downscaled_blocks

    votes = np.zeros((8, 8))
    votes[2, 5] = 1.0  # every window votes (for phase (2, 5))
    def votes_for_a_full_window(window, side, kept):
        assert window.shape == (side + 8, side + 8)  # a window never reads past the resampled region
        return votes

    monkeypatch.setattr(downscaled_blocks, "phase_shares", votes_for_a_full_window)
    region = np.zeros((216, 270, 3), np.uint8)
    assert len(back_windows([region], [(0, 0, 270, 216)], 6.0)) == 1
    split = back_windows([region], [(0, 0, 270, 216)], 6.0, split=True)
    # 280 x 352 source pixels within the margins: 2 x 3 windows of 96-128 px and the 8 each reads past its side
    assert sorted((row, column) for row, column, _ in split) == [(4, 4), (4, 121), (4, 238), (144, 4), (144, 121),
                                                                  (144, 238)]
    big = np.zeros((512, 512, 3), np.uint8)
    assert len(back_windows([big], [(0, 0, 512, 512)], 4.1, split=True)) == SPLIT_MAX_WINDOWS ** 2  # 9 fit each way


def test_a_small_images_tiles_read_too_few_windows_and_its_whole_pixels_agree():
    period = 8 * SMALL_SCALE
    for seed in (1, 2, 3, SMALL_SEED):
        tiles, size = Scorer(device="cpu").tile(small_jpeg_then_downscaled(seed))
        assert tiles.whole is not None and tiles.whole.shape == (size[1], size[0], 3)
        assert back_agreement(tiles.own(), tiles.boxes, size, period).read < MIN_WINDOWS
        whole = back_agreement([tiles.whole], [(0, 0, *size)], size, period, split=True)
        assert whole.read == 6 and whole.agreeing == 6
        assert whole.agrees(scoring.BLOCKS_WHOLE_MIN_AGREEMENT, scoring.BLOCKS_WHOLE_MIN_WINDOWS)
        tiles, size = Scorer(device="cpu").tile(small_clean_downscaled(seed))  # its clean source, downscaled alike
        clean = back_agreement([tiles.whole], [(0, 0, *size)], size, period, split=True)
        assert clean.agreeing <= 3 and not clean.agrees(scoring.BLOCKS_WHOLE_MIN_AGREEMENT, 1)
    assert not BackAgreement(6.0, 5, 5).agrees(0.75, 6) and BackAgreement(6.0, 5, 6).agrees(0.75, 6)


def test_candidate_periods_keep_the_band_and_drop_near_repeats():
    assert candidate_periods([6.0, 6.03, None, 0.0, 3.9, 8.2, 4.2, 12.0]) == [6.0, 4.2]


@pytest.fixture
def rules_blind(monkeypatch):
    """A Scorer whose rules, judge and appearance network find nothing, so that the blocks decide (the judge's
    probability is still computed: it decides whether they are asked)."""
    monkeypatch.setattr(scoring, "DOWNSCALED_MIN_PEAK", np.inf)
    monkeypatch.setattr(scoring, "DOWNSCALED_RENAME_SURE_PEAK", np.inf)
    monkeypatch.setattr(scoring, "CHROMA_MAX_SHARPNESS", 0.0)
    monkeypatch.setattr(scoring, "CHROMA_GRID_MAX_SHARPNESS", 0.0)
    monkeypatch.setattr(scoring.ResizedJudge, "flags", lambda self, probability: False)
    return Scorer(device="cpu", judge_appearance=False)


def test_the_scorer_finds_by_the_blocks_what_the_judge_leans_on(rules_blind, monkeypatch):
    result = rules_blind.score(jpeg_then_downscaled())
    assert result.label == "jpeg" and result.evidence.word == "downscaled" and result.quality is None
    details = result.details()["downscaled"]
    assert details["blocks"] == [8, 8] and details["blocks_from"] == "tiles" and details["judged"] is None
    assert details["scale"] == pytest.approx(SCALE, abs=0.01)
    monkeypatch.setattr(scoring, "BLOCKS_MIN_JUDGED", 1.01)  # the judge never leans enough: not asked
    assert rules_blind.score(jpeg_then_downscaled()).label == "clean"


def test_clean_art_asked_whatever_the_judge_stays_clean(rules_blind, monkeypatch):
    monkeypatch.setattr(scoring, "BLOCKS_MIN_JUDGED", 0.0)
    monkeypatch.setattr(scoring, "JUDGE_MAX_TILE_CLEAN", 1.0)  # the head is sure these are clean: ask anyway
    read = []
    monkeypatch.setattr(scoring, "back_agreement", lambda *a, **k: read.append(back_agreement(*a, **k)) or read[-1])
    for seed in (1, 2, 3):
        asked = len(read)
        result = rules_blind.score(downscaled(draw_art(seed, SIZE), SCALE, "bicubic"))
        assert len(read) > asked and all(r.read >= MIN_WINDOWS for r in read[asked:])  # asked, and windows read
        assert result.label == "clean" and result.details()["downscaled"] is None


def test_the_scorer_reads_a_small_images_whole_pixels_where_its_tiles_give_too_few_windows(rules_blind, monkeypatch):
    result = rules_blind.score(small_jpeg_then_downscaled())
    assert result.label == "jpeg" and result.evidence.word == "downscaled" and result.quality is None
    details = result.details()["downscaled"]
    assert details["blocks"] == [6, 6] and details["blocks_from"] == "whole"
    assert rules_blind.score(small_clean_downscaled()).label == "clean"
    monkeypatch.setattr(scoring, "BLOCKS_WHOLE_MIN_WINDOWS", 10 ** 6)  # the tiles alone: too few windows
    assert rules_blind.score(small_jpeg_then_downscaled()).label == "clean"


def test_a_small_images_pixels_reach_whichever_process_scores(rules_blind, tmp_path):
    """A worker that decodes sends them with its tiles (the main process scores); one that scores holds them."""
    import pickle

    from PIL import Image

    from ccscore import pipeline
    from ccscore.inputs import InputItem

    path = tmp_path / "small.png"
    Image.fromarray(small_jpeg_then_downscaled()).save(path)
    here = rules_blind.score(path).to_dict(with_details=True)
    assert here["label"] == "jpeg" and here["details"]["downscaled"]["blocks"] == [6, 6]
    spec = pipeline.TileSpec(rules_blind.info.tiling, rules_blind.info.tile_size, dict(rules_blind.tiling_params),
                             rules_blind.max_pixels, rules_blind.halve_upscaled)
    sent = pickle.loads(pickle.dumps(pipeline.decode_one(str(path), spec)))
    assert np.array_equal(sent.whole, np.asarray(Image.open(path).convert("RGB")))
    decoded = pipeline._as_decoded(InputItem(str(path)), (sent, []))
    [(_, record)] = pipeline.score_batch(rules_blind, [decoded], with_details=True)
    assert {k: record[k] for k in ("label", "evidence", "details")} == \
        {k: here[k] for k in ("label", "evidence", "details")}
    scored = pipeline.score_decoded(pipeline.decode_one(str(path), spec, keep_tiles=True), str(path), rules_blind)
    assert scored.scored.to_dict(with_details=True)["details"] == here["details"]


@pytest.mark.parametrize("judged, agreeing, read, label", [
    (scoring.BLOCKS_LEANING_JUDGED + 0.01, 3, 3, "jpeg"),  # leaning further: 3 windows suffice
    (scoring.BLOCKS_LEANING_JUDGED + 0.01, 3, 4, "jpeg"),
    (scoring.BLOCKS_LEANING_JUDGED + 0.01, 2, 3, "clean"),  # too few agreeing
    (scoring.BLOCKS_LEANING_JUDGED - 0.01, 3, 3, "clean"),  # leaning less: 4 windows needed
    (scoring.BLOCKS_LEANING_JUDGED - 0.01, 4, 4, "jpeg"),
])
def test_where_the_judge_leans_further_fewer_windows_suffice(rules_blind, monkeypatch, judged, agreeing, read, label):
    monkeypatch.setattr(scoring.ResizedJudge, "probability", lambda self, values: judged)
    monkeypatch.setattr(scoring, "back_agreement", lambda regions, boxes, size, period, split=False:
                        BackAgreement(period, 0, 0) if split else BackAgreement(period, agreeing, read))
    result = rules_blind.score(jpeg_then_downscaled())
    assert result.label == label
    if label == "jpeg":
        assert result.details()["downscaled"]["blocks"] == [agreeing, read]
        assert result.details()["downscaled"]["blocks_from"] == "tiles"


def test_the_read_back_periods_are_the_planes_peaks_strongest_first_each_named_by_its_strongest_plane():
    from ccscore.resized import GridPeak
    from ccscore.scorer import TileReads

    def peak(strength, period):
        return GridPeak(strength, period, False, 0.0, 0.0, 0.0, 0.0)

    reads = TileReads(tiles=None)
    # cached reads set directly: luma at 6.0, Cb at 6.0 and stronger, Cr at 4.5 (in the band), none out of the band
    reads.__dict__.update(luma_peak=peak(3.0, 6.0), chroma_peaks=[peak(5.0, 6.0), peak(4.0, 4.5)])
    assert reads.read_back_periods() == [(6.0, "chroma"), (4.5, "chroma")]
    reads = TileReads(tiles=None)
    reads.__dict__.update(luma_peak=peak(9.0, 5.0), chroma_peaks=[None, peak(2.0, 12.0)])
    assert reads.read_back_periods() == [(5.0, "luma")]
    reads = TileReads(tiles=None)  # by strength: neither by period, either way, nor in the planes' order
    reads.__dict__.update(luma_peak=peak(5.0, 5.0), chroma_peaks=[peak(3.0, 7.0), peak(9.0, 4.5)])
    assert reads.read_back_periods() == [(4.5, "chroma"), (5.0, "luma"), (7.0, "chroma")]
    reads.__dict__.update(chroma_peaks=[peak(9.0, 7.0), peak(3.0, 4.5)])
    assert reads.read_back_periods() == [(7.0, "chroma"), (5.0, "luma"), (4.5, "chroma")]
