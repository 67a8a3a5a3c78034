"""The decoder check: an image's colours name the lossy decoder they came out of (ccscore.decoders)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, features

from ccscore import decoders
from ccscore.decoders import DECODER_MIN_COLOURS, build_reachable, decoder_trace
from conftest import BUNDLED_MODEL, draw_art


def saved(im: Image.Image, fmt: str, **options) -> np.ndarray:
    buf = io.BytesIO()
    im.save(buf, fmt, **options)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


@pytest.mark.parametrize("codec", sorted(decoders.CONVERSIONS))
def test_the_shipped_colour_sets_are_the_conversions_own(codec):
    shipped = decoders.reachable(codec)
    assert decoders.shipped_path(codec).is_file()  # read, not rebuilt: the first lossy-looking image costs no build
    assert np.array_equal(shipped, build_reachable(codec))
    share = np.unpackbits(shipped).mean()
    assert share == pytest.approx({"jpeg": 0.254, "webp": 0.176, "avif": 0.254}[codec], abs=0.005)  # sparse: chance stays low


@pytest.mark.parametrize("codec", sorted(decoders.CONVERSIONS))
def test_grey_shift_closed_says_which_subsets_a_grey_shift_keeps(codec):
    """Counting JPEG's telling colours once per hue stands on this: c in the subset exactly when c + (1, 1, 1)
    is, for every unclipped pair."""
    seen = np.unpackbits(decoders.reachable(codec)).reshape(256, 256, 256)
    closed = np.array_equal(seen[1:254, 1:254, 1:254], seen[2:255, 2:255, 2:255])
    assert closed == (codec in decoders.GREY_SHIFT_CLOSED)


@pytest.mark.parametrize("fmt,options,codec", [
    ("WEBP", {"quality": 30}, "webp"), ("WEBP", {"quality": 80}, "webp"), ("WEBP", {"quality": 100}, "webp"),
    ("JPEG", {"quality": 50}, "jpeg"), ("JPEG", {"quality": 95, "subsampling": 0}, "jpeg"),
    ("JPEG", {"quality": 100}, "jpeg"),
])
def test_decoded_jpeg_and_webp_name_their_decoder_at_every_quality(fmt, options, codec):
    trace = decoder_trace([saved(draw_art(3), fmt, **options)])
    assert trace.proven == codec
    assert trace.shares[codec] == 1.0


@pytest.mark.skipif(not features.check("avif"), reason="Pillow without AVIF")
@pytest.mark.parametrize("options", [{"quality": 30}, {"quality": 90}, {"quality": 60, "subsampling": "4:4:4"}])
def test_decoded_avif_names_libyuv_not_jpeg(options):
    """libavif's libyuv conversion: every colour in its subset, and enough of them outside JPEG's (which holds
    0.6-0.7 of them) to rule JPEG out."""
    trace = decoder_trace([saved(draw_art(3), "AVIF", **options)])
    assert trace.proven == "avif"
    assert trace.shares["avif"] == 1.0 and 0.5 < trace.shares["jpeg"] < 0.9


def _hues(codec_in: set, codec_out: set, count: int, seed: int) -> list[tuple[int, int, int]]:
    """`count` colours of distinct hues that lie in the subsets of `codec_in` and outside those of `codec_out`."""
    colours = np.random.default_rng(seed).integers(40, 216, (100_000, 3))
    codes = colours[:, 0] << 16 | colours[:, 1] << 8 | colours[:, 2]
    keep = np.ones(len(codes), dtype=bool)
    for codec in codec_in | codec_out:
        keep &= decoders._contains(decoders.reachable(codec), codes) == (codec in codec_in)
    hues = colours[:, :2] - colours[:, 2:]
    _, first = np.unique(hues[keep], axis=0, return_index=True)
    assert len(first) >= count
    return [tuple(int(x) for x in c) for c in colours[keep][np.sort(first)[:count]]]


def test_colours_two_decoders_can_both_output_prove_neither():
    both = _hues({"jpeg", "avif"}, set(), 48, seed=0)
    trace = decoder_trace([np.array(both, np.uint8)[None]])
    assert trace.shares["jpeg"] == trace.shares["avif"] == 1.0 and trace.proven is None


def test_a_decoder_ruled_out_by_its_misses_leaves_the_other_proven_whatever_share_it_reaches():
    """Colours libjpeg outputs, 3 in 4 of them in libyuv's subset too: libyuv, missing the rest, is ruled out."""
    colours = _hues({"jpeg", "avif"}, set(), 36, seed=1) + _hues({"jpeg"}, {"avif"}, 12, seed=2)
    trace = decoder_trace([np.array(colours, np.uint8)[None]])
    assert trace.shares["avif"] == pytest.approx(0.75) and trace.proven == "jpeg"
    one_miss = _hues({"jpeg", "avif"}, set(), 47, seed=3) + _hues({"jpeg"}, {"avif"}, 1, seed=4)
    assert decoder_trace([np.array(one_miss, np.uint8)[None]]).proven is None  # a miss the proven one may have too


def test_greys_name_webp_but_never_jpeg():
    grey = draw_art(4).convert("L")
    assert decoder_trace([saved(grey, "WEBP", quality=70)]).proven == "webp"  # it skips every seventh grey
    jpeg = decoder_trace([saved(grey, "JPEG", quality=70)])
    assert jpeg.proven is None and jpeg.counts["jpeg"] == 0  # every grey is a JPEG output: nothing told


def test_clean_resized_and_sparse_colours_name_nothing():
    art = draw_art(5)
    assert decoder_trace([np.asarray(art)]).proven is None
    noise = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    clean = decoder_trace([noise])
    assert clean.proven is None and max(clean.shares.values()) < 0.3  # chance: 25% and 18% of the cube
    resized = Image.fromarray(saved(art, "JPEG", quality=60)).resize((300, 250), Image.LANCZOS)
    assert decoder_trace([np.asarray(resized)]).proven is None  # resampling mixes colours off the subset
    few = saved(Image.new("RGB", (64, 64), (200, 40, 90)), "WEBP", quality=50)
    trace = decoder_trace([few])
    assert trace.counts["webp"] < DECODER_MIN_COLOURS and trace.proven is None


@pytest.mark.skipif(not BUNDLED_MODEL.is_file(), reason="bundled model missing")
def test_the_decoder_check_names_the_codec_where_the_scores_see_lossy_damage(monkeypatch):
    from ccscore import scorer as scoring
    from ccscore.scorer import Scorer, TileOutputs

    scorer = Scorer()
    tiles, size = scorer.tile(saved(draw_art(6), "WEBP", quality=60))
    outputs = TileOutputs(np.full((len(tiles.boxes), len(scorer.labels)), 1.0 / len(scorer.labels), np.float32))
    leaning_jpeg = {"clean": 0.35, "jpeg": 0.6, "webp": 0.05}  # thin lines on black, WebP, called JPEG
    result = scorer.result(tiles, size, outputs, judged=(leaning_jpeg, None))
    assert result.label == "webp" and result.decoder == "webp" and result.details()["decoder"] == "webp"
    assert result.scores["clean"] == pytest.approx(0.035) and sum(result.scores.values()) == pytest.approx(1.0)
    weak = {"clean": 0.9, "jpeg": 0.01, "webp": 0.09}  # weak evidence lifted: the colours prove it
    assert scorer.result(tiles, size, outputs, judged=(weak, None)).label == "webp"

    def never(_):
        raise AssertionError("colours read for an image without any lossy trace")

    monkeypatch.setattr(scoring, "decoder_trace", never)
    nothing = {"clean": 1.0 - scoring.DECODER_MIN_LOSSY / 2, "jpeg": scoring.DECODER_MIN_LOSSY / 2, "webp": 0.0}
    result = scorer.result(tiles, size, outputs, judged=(nothing, None))
    assert result.label == "clean" and result.decoder is None


@pytest.mark.skipif(not BUNDLED_MODEL.is_file(), reason="bundled model missing")
@pytest.mark.parametrize("fmt", ["WEBP", "JPEG", "PNG"])
def test_stored_outputs_are_judged_with_the_decoder_check_as_scoring_does(fmt):
    """Calibration judges stored outputs (Scorer.judge_as_scored): the decoder check must apply there alike."""
    from ccscore.scorer import Scorer

    scorer = Scorer()
    image = saved(draw_art(7), fmt, **({} if fmt == "PNG" else {"quality": 85}))
    tiles, _ = scorer.tile(image)
    outputs = scorer.run(tiles.pixels)
    stored = scorer.judge_as_scored(outputs, tiles.boxes, lambda used, evidence: scorer.table_check(
        used, evidence, tiles)[0], decoder_trace(tiles.own()))
    scored = scorer.score(image)
    assert stored == pytest.approx(scored.scores)
    assert scored.label == fmt.lower().replace("png", "clean")


def test_colours_one_grey_shift_apart_tell_jpeg_once():
    """JPEG's subset is closed under adding a grey (its decoder adds luma to every channel), so a hue run through
    the luma levels is one trial, not 200: 20 hues JPEG's decoder outputs, each shifted through every level it
    can take (4,000 colours, all in the subset: clean procedural art, an 'add' blend of a grey ramp), prove
    nothing."""
    red, green, blue = decoders.CONVERSIONS["jpeg"](128)  # mid luma: no channel clips near neutral chroma
    hues = np.random.default_rng(0).integers(96, 160, (20, 2))  # (Cb, Cr) near neutral: long runs
    offsets = np.array([[red[cr], green.reshape(256, 256)[cb, cr], blue[cb]] for cb, cr in hues]) - 128
    levels = np.arange(256)[:, None, None]
    image = (offsets[None, :, :] + levels).astype(np.int64)
    # (the levels at which a hue would clip: mid grey, which tells JPEG nothing)
    image = np.where(((image > 0) & (image < 255)).all(-1, keepdims=True), image, 128).astype(np.uint8)
    trace = decoder_trace([image])
    assert trace.shares["jpeg"] == 1.0 and trace.proven is None
    assert trace.counts["jpeg"] == len(np.unique(offsets[:, :2] - offsets[:, 2:], axis=0))


def test_a_float_limited_range_conversion_is_not_libwebps():
    """Planes converted to RGB by the textbook limited-range BT.601 formula in floating point, rounded (video
    frames, YCbCr pipelines: no lossy codec), land in libwebp's subset for 98-99% of their colours by nearness
    of arithmetic, never all: a proof asks for more than that."""
    planes = np.random.default_rng(1).integers(16, 241, (128, 128, 3)).astype(np.float64)
    y, cb, cr = (planes[..., 0] - 16) * 255 / 219, (planes[..., 1] - 128) * 255 / 224, (planes[..., 2] - 128) * 255 / 224
    rgb = np.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], -1)
    trace = decoder_trace([np.clip(np.round(rgb), 0, 255).astype(np.uint8)])
    assert 0.97 < trace.shares["webp"] < 0.995 and trace.proven is None


def test_the_decoder_check_reads_at_most_the_tables_pixels_whatever_the_tiling(tmp_path, monkeypatch):
    # A tiling of many tiles (256 of 512 read whole: 4 GB and 7 s for one image's colours) is read only in part.
    import ccscore.scorer as scorer_module
    from ccscore import Scorer

    read = []
    monkeypatch.setattr(scorer_module, "decoder_trace", lambda pixels: read.append(pixels) or decoder_trace(pixels))
    scorer = Scorer(BUNDLED_MODEL, max_tiles=256)
    path = tmp_path / "big.jpg"
    draw_art(5, (2400, 1800)).save(path, quality=40)
    assert scorer.tile(path)[0].pixels[..., 0].size > 2 * scorer_module.TABLE_PIXELS  # the tiling is large
    assert scorer.score(path).decoder == "jpeg"
    assert read and all(0 < sum(t.shape[0] * t.shape[1] for t in r) <= scorer_module.TABLE_PIXELS for r in read)
