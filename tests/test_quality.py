"""Issue #11: quantisation tables read from pixels, header facts, and selection by quality."""

from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest
from PIL import Image, ImageDraw

from ccscore.container import read_container, recompressed
from ccscore import quantisation as q
from ccscore.quantisation import IJG_LUMA, ZIGZAG, estimate_luma_table, ijg_table, LUMA_BASE
from ccscore.selection import Selection
from conftest import BUNDLED_MODEL, draw_art, run_cli


def jpeg_bytes(im: Image.Image, quality: int, **options) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality, **options)
    return buf.getvalue()


def decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


# ---------------------------------------------------------------- the IJG scale


def test_ijg_tables_are_libjpegs_scaling():
    assert (ijg_table(LUMA_BASE, 50) == LUMA_BASE).all()
    assert ijg_table(LUMA_BASE, 100).max() == 1
    assert ijg_table(LUMA_BASE, 1).max() == 255  # baseline tables stop at 255
    assert ijg_table(LUMA_BASE, 75)[0, 0] == 8  # (16 * 50 + 50) // 100
    assert ijg_table(LUMA_BASE, 10)[0, 0] == 80  # scale 5000 / 10 = 500


# ---------------------------------------------------------------- header facts


@pytest.mark.parametrize("quality", [1, 10, 37, 50, 51, 75, 90, 95, 100])
@pytest.mark.parametrize("subsampling,name", [(0, "4:4:4"), (1, "4:2:2"), (2, "4:2:0")])
def test_container_quality_is_the_ijg_match_of_the_files_tables(tmp_path, quality, subsampling, name):
    path = tmp_path / "a.jpg"
    path.write_bytes(jpeg_bytes(draw_art(1, (64, 48)), quality, subsampling=subsampling))
    facts = read_container(path)
    assert facts == {"format": "jpeg", "progressive": False, "lossless": False, "arithmetic": False,
                     "subsampling": name, "quality": quality, "table": "ijg"}


def test_container_reads_progressive_grey_and_custom_tables(tmp_path):
    art = draw_art(2, (64, 48))
    (tmp_path / "p.jpg").write_bytes(jpeg_bytes(art, 80, progressive=True))
    assert read_container(tmp_path / "p.jpg")["progressive"] is True
    (tmp_path / "g.jpg").write_bytes(jpeg_bytes(art.convert("L"), 60))
    grey = read_container(tmp_path / "g.jpg")
    assert (grey["subsampling"], grey["quality"], grey["table"]) == ("grey", 60, "ijg")
    table = (IJG_LUMA[69] + 1).ravel().tolist()  # quality 70's table, every step one larger: no IJG quality
    art.save(tmp_path / "c.jpg", "JPEG", qtables=[table, table])
    custom = read_container(tmp_path / "c.jpg")
    assert custom["table"] == "custom" and abs(custom["quality"] - 70) <= 3


def test_container_reads_the_other_formats(tmp_path):
    art = draw_art(3, (64, 48))
    art.save(tmp_path / "a.webp", "WEBP", quality=80)
    art.save(tmp_path / "b.webp", "WEBP", lossless=True)
    art.save(tmp_path / "c.png")
    art.convert("P").save(tmp_path / "d.png")
    assert read_container(tmp_path / "a.webp") == {"format": "webp", "lossless": False}
    assert read_container(tmp_path / "b.webp") == {"format": "webp", "lossless": True}
    assert read_container(tmp_path / "c.png") == {"format": "png", "bit_depth": 8, "colour": "rgb"}
    assert read_container(tmp_path / "d.png")["colour"] == "palette"
    (tmp_path / "e.avif").write_bytes(struct.pack(">I", 24) + b"ftypavif" + b"\0" * 12)
    assert read_container(tmp_path / "e.avif") == {"format": "avif", "animated": False}
    jbrd = struct.pack(">I", 12) + b"JXL \r\n\x87\n" + struct.pack(">I", 8) + b"jbrd"
    (tmp_path / "f.jxl").write_bytes(jbrd)
    assert read_container(tmp_path / "f.jxl") == {"format": "jxl", "from_jpeg": True}
    (tmp_path / "g.jxl").write_bytes(b"\xff\x0a" + b"\0" * 20)
    assert read_container(tmp_path / "g.jxl") == {"format": "jxl", "from_jpeg": False}
    (tmp_path / "h.bin").write_bytes(b"nothing known")
    assert read_container(tmp_path / "h.bin") == {"format": None}
    assert "error" in read_container(tmp_path / "missing.jpg")


def test_truncated_and_hostile_headers_give_an_error_never_an_exception(tmp_path):
    data = jpeg_bytes(draw_art(4, (64, 48)), 75)
    path = tmp_path / "t.jpg"
    for cut in range(2, 700, 3):
        path.write_bytes(data[:cut])
        facts = read_container(path)
        assert facts["format"] == "jpeg" and "\n" not in facts.get("error", "")
        assert "error" in facts or "quality" in facts
    hostile = {
        "zero length": b"\xff\xd8\xff\xdb\x00\x00",
        "zero step": b"\xff\xd8\xff\xdb\x00\x43\x00" + b"\x00" * 64,
        "table id 9": b"\xff\xd8\xff\xdb\x00\x43\x09" + b"\x01" * 64,
        "bad frame": b"\xff\xd8\xff\xc0\x00\x08\x08\x00\x10\x00\x10\x05",
        "not a marker": b"\xff\xd8\x00\x00",
        "endless segments": b"\xff\xd8" + b"\xff\xe1\x00\x02" * 10_000,
        "fill bytes": b"\xff\xd8" + b"\xff" * 100_000,
    }
    for name, head in hostile.items():
        path.write_bytes(head)
        facts = read_container(path)
        assert facts["format"] == "jpeg" and facts.get("error"), name
    (tmp_path / "w.webp").write_bytes(b"RIFF\xff\xff\xff\xffWEBPVP8X\xff\xff\xff\xff")
    assert read_container(tmp_path / "w.webp") == {"format": "webp", "error": "no image chunk"}
    (tmp_path / "p.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    assert read_container(tmp_path / "p.png") == {"format": "png", "error": "truncated header"}


def test_zigzag_is_a_permutation():
    assert sorted(ZIGZAG.tolist()) == list(range(64))


# ---------------------------------------------------------------- the table from pixels


@pytest.mark.parametrize("quality,subsampling", [(35, 2), (60, 0), (80, 2), (88, 1), (93, 0)])
def test_the_table_read_from_pixels_gives_the_encoders_quality(quality, subsampling):
    pixels = decoded(jpeg_bytes(draw_art(5), quality, subsampling=subsampling))
    estimate = estimate_luma_table([pixels], [(0, 0)])
    assert (estimate.kind, estimate.quality) == ("ijg", quality)
    known = estimate.steps > 0
    assert known.sum() >= 8 and (estimate.steps[known] == IJG_LUMA[quality - 1][known]).all()


def test_the_grid_offset_is_honoured():
    pixels = decoded(jpeg_bytes(draw_art(6), 70))[3:, 5:]  # the grid now starts at row 5, column 3
    assert estimate_luma_table([pixels], [(5, 3)]).quality == 70
    assert not estimate_luma_table([pixels], [(0, 0)]).found


@pytest.mark.parametrize("quality", [30, 40, 56, 62, 66, 76])
def test_art_on_white_whose_every_block_clips_still_gives_its_quality(quality):
    """Not a table of about half its steps, whose lattice holds the true one's points too (a search over every
    5th quality read q30 as 59, q66 as 83, q45 as 72, q76 as 88 on real art)."""
    rng = np.random.default_rng(7)
    art = np.full((256, 256, 3), 255, np.uint8)
    for _ in range(400):  # dark strokes all over a white page: every block touches 255 or 0
        y, x = rng.integers(0, 250, 2)
        art[y : y + 3, x : x + rng.integers(4, 12)] = rng.integers(0, 90, 3)
    pixels = decoded(jpeg_bytes(Image.fromarray(art), quality))
    estimate = estimate_luma_table([pixels], [(0, 0)])
    assert estimate.blocks < 10  # nearly no unclipped block: the clipped ones were read
    assert (estimate.kind, estimate.quality) == ("ijg", quality)


# The plain forms of the table reader's inner loops: the faster ones must give the same floats, bit for bit
# (sums over them run in memory order, so the same layout too).


def plain_lattice_evidence(values, steps, zero=False):
    magnitude, steps = np.abs(np.asarray(values, np.float32)), np.asarray(steps, np.float32)
    multiple = np.maximum(np.round(magnitude / steps), 0.0 if zero else 1.0)
    residual = np.abs(magnitude - multiple * steps)
    scale = np.float32(-0.5 / q.NOISE**2)
    density = np.exp(scale * residual**2)
    density += np.where(zero | (magnitude >= steps), np.exp(scale * (steps - residual) ** 2), 0.0)
    density *= steps * np.float32((1.0 - q.OUTLIERS) / (q.NOISE * np.sqrt(2 * np.pi)))
    return np.log(density + np.float32(q.OUTLIERS))


def plain_dct(x):
    return q.DCT8_32 @ (x.astype(np.float32) - np.float32(128.0)) @ q.DCT8_32.T


def plain_repair_clipped(luma, clip, tables, rounds):
    steps = tables[:, None].astype(np.float32)
    inverse = 1.0 / steps
    lowest = np.where((clip == -1) | (clip == 2), -np.inf, luma).astype(np.float32)
    highest = np.where((clip == 1) | (clip == 2), np.inf, luma).astype(np.float32)
    x = np.broadcast_to(luma, steps.shape[:1] + luma.shape)
    for _ in range(rounds):
        x = np.clip(q.idct_blocks(steps * np.round(plain_dct(x) * inverse)), lowest, highest)
    return plain_dct(x)


def same_floats(a: np.ndarray, b: np.ndarray) -> bool:
    """Same values, bit for bit, in the same memory order (the strides of axes longer than 1)."""
    def order(x):
        return [stride for stride, size in zip(x.strides, x.shape) if size > 1]
    return a.dtype == b.dtype and a.shape == b.shape and order(a) == order(b) and a.tobytes() == b.tobytes()


def clipped_jpeg_blocks(quality: int) -> tuple[np.ndarray, np.ndarray]:
    """Luma and clip flags of the clipped blocks of art on white, JPEG'd at `quality`."""
    rng = np.random.default_rng(quality)
    art = np.full((128, 128, 3), 255, np.uint8)
    for _ in range(150):
        y, x = rng.integers(0, 122, 2)
        art[y : y + 3, x : x + rng.integers(4, 12)] = rng.integers(0, 90, 3)
    rgb, clip = q.rgb_blocks([decoded(jpeg_bytes(Image.fromarray(art), quality))], [(0, 0)])
    clipped = (clip != 0).reshape(len(clip), -1).any(axis=1)
    return (rgb @ q.YCBCR[0])[clipped][:40], clip[clipped][:40]


def test_lattice_evidence_gives_the_plain_forms_floats():
    rng = np.random.default_rng(0)
    values = (rng.normal(0, 30, 700) * (rng.random(700) < 0.8)).astype(np.float32)
    blocks = rng.normal(0, 40, (24, 5, 8, 8)).astype(np.float32).swapaxes(0, 1)  # as repair_clipped lays them out
    cases = [(values[None, :], np.arange(1, 40, dtype=np.float64)[:, None]),  # frequency_step
             (values[None, :], IJG_LUMA.reshape(100, 64)[:, rng.integers(1, 64, 700)]),  # fit_ijg_lattice
             (blocks, IJG_LUMA[rng.integers(0, 100, 5)][:, None])]  # fit_clipped
    for values_, steps in cases:
        for zero in (False, True):
            assert same_floats(q.lattice_evidence(values_, steps, zero), plain_lattice_evidence(values_, steps, zero))


@pytest.mark.parametrize("quality", [30, 62, 90])
def test_repair_clipped_gives_the_plain_loops_coefficients(quality):
    luma, clip = clipped_jpeg_blocks(quality)
    tables = IJG_LUMA[np.arange(quality - 6, quality + 7, 3) - 1]
    for rounds in (0, 1, 4, 8):
        plain = plain_repair_clipped(luma, clip, tables, rounds)
        assert same_floats(q.repair_clipped(luma, clip, tables, rounds), plain)
        assert same_floats(q.repair_clipped(luma, clip, tables, rounds, q.dct_blocks(luma)), plain)
        for one_table, one_block in ((tables[:1], luma), (tables, luma[:1])):
            clips = clip[: len(one_block)]
            assert same_floats(q.repair_clipped(one_block, clips, one_table, rounds),
                               plain_repair_clipped(one_block, clips, one_table, rounds))
    # Both kinds of pair are there: ones that settle within the rounds (skipped after) and ones still moving.
    fourth, fifth = plain_repair_clipped(luma, clip, tables, 4), plain_repair_clipped(luma, clip, tables, 5)
    settled = (fourth == fifth).reshape(len(tables), len(luma), -1).all(axis=2)
    assert settled.any() and not settled.all()


def test_repair_clipped_of_no_block_or_no_table_is_empty_like_the_plain_loop():
    luma, clip = clipped_jpeg_blocks(62)
    tables = IJG_LUMA[[60, 61]]
    for blocks, clips, candidates in ((luma[:0], clip[:0], tables), (luma, clip, tables[:0])):
        for rounds in (0, 3):
            repaired, plain = (f(blocks, clips, candidates, rounds) for f in (q.repair_clipped, plain_repair_clipped))
            assert (repaired.shape, repaired.dtype) == (plain.shape, plain.dtype)  # nothing in them to order


def test_lower_quartile_floor_is_that_of_np_quantile():
    rng = np.random.default_rng(1)
    for trial in range(3000):
        m = int(rng.integers(1, 70))
        values = np.abs(rng.normal(0, rng.choice([1.0, 5.0, 40.0]), m)).astype(np.float32)
        if trial % 2:  # order statistics on both sides of an integer, or on one: every branch
            values = (np.floor(values) + rng.choice([0.0, 0.5, 0.99999994], m)).astype(np.float32)
        assert q.lower_quartile_floor(values) == int(np.quantile(values, 0.25))


@pytest.mark.skipif(not BUNDLED_MODEL.is_file(), reason="bundled model missing")
def test_a_small_jpeg_is_read_on_its_own_pixels_not_its_tiles_padding():
    from ccscore import Scorer

    art = draw_art(10, (200, 90))  # shorter than a tile: every tile is edge-padded below row 90
    image = Image.open(io.BytesIO(jpeg_bytes(art, 45)))
    scorer = Scorer(BUNDLED_MODEL)
    result = scorer.score(image)
    assert (result.label, result.quality, result.quality_source) == ("jpeg", 45, "table")
    own_blocks = sum(((b[3] - b[1]) // 8) * ((b[2] - b[0]) // 8) for b in scorer.tile(image)[0].boxes)
    assert 0 < result.table.blocks <= own_blocks


def test_near_flat_noise_fits_no_coarse_table():
    rng = np.random.default_rng(11)  # a flat page with faint noise: its few coefficients sit near zero
    page = np.clip(200 + rng.normal(0, 0.6, (256, 256, 1)), 0, 255).round().astype(np.uint8).repeat(3, axis=2)
    assert estimate_luma_table([page], [(0, 0)]).kind is None


def test_a_resized_jpeg_and_a_clean_image_have_no_table():
    art = draw_art(8)
    small = Image.fromarray(decoded(jpeg_bytes(art, 60))).resize((345, 288), Image.Resampling.LANCZOS)
    assert estimate_luma_table([np.asarray(small)], [(0, 0)]).kind is None
    assert estimate_luma_table([np.asarray(art)], [(0, 0)]).kind is None


def test_a_jpeg_table_in_the_pixels_overrules_a_gate_that_saw_too_little_grid():
    """High-quality JPEG (q95-98) often shows too little grid agreement for the gate, yet its table shows as a
    lattice: the image is then JPEG, with P(clean) cut to LATTICE_KEPT_SHARE. Clean art and a JPEG resized
    afterwards show no lattice and stay as the gate said. (A gate that lets no JPEG through stands in for one
    that found too little agreement.)"""
    from ccscore import Scorer
    from ccscore.scorer import LATTICE_KEPT_SHARE, LATTICE_EVIDENCE, GridGate

    scorer = Scorer(BUNDLED_MODEL, find_downscaled=False)  # the table check alone (the period: test_downscaled.py)
    gate = scorer.grid_gate
    art = draw_art(12, (512, 384))
    images = {
        "jpeg q95": Image.open(io.BytesIO(jpeg_bytes(art, 95))),
        "jpeg q85": Image.open(io.BytesIO(jpeg_bytes(art, 85))),
        "clean": art,
        "jpeg q60 then downscaled": Image.fromarray(decoded(jpeg_bytes(art, 60))).resize((427, 320), Image.Resampling.LANCZOS),
    }
    scorer.grid_gate = GridGate(gate.periods, {label: 2.0 for label in gate.periods}, gate.slope, gate.weak)
    strict = {name: scorer.score(im) for name, im in images.items()}
    for name in ("jpeg q95", "jpeg q85"):
        assert strict[name].label == "jpeg", name
        assert strict[name].scores["clean"] <= LATTICE_KEPT_SHARE + 1e-9, name
        assert strict[name].quality_source == "table" and strict[name].quality == int(name[-2:]), name
        # --details shows what the label stands on, even where the lattice is too weak to name a table's kind
        assert strict[name].details()["table_evidence"] >= LATTICE_EVIDENCE, name
    for name in ("clean", "jpeg q60 then downscaled"):
        assert strict[name].label == "clean" and strict[name].table is None, name
        assert strict[name].details()["table_evidence"] is None, name


def test_the_table_check_gives_the_same_scores_at_every_threshold():
    """Scores are the image's, the threshold only labels them ("clean unless P(clean) < 1 - T"): a table that
    shows as a lattice cuts P(clean) whatever threshold the run uses, so records scored at one threshold and
    re-read at another (sorted by scores.clean to choose T, as the README advises) label as a run at that
    threshold would. (A gate centered on the image's own 8x8 agreement halves its P(jpeg): P(clean) between 0.3
    and 0.7 before the table check, JPEG at T 0.3, clean at T 0.7.)"""
    from ccscore import Scorer
    from ccscore.scorer import LATTICE_KEPT_SHARE, GridGate, decide

    scorer = Scorer(BUNDLED_MODEL)
    image = Image.open(io.BytesIO(jpeg_bytes(draw_art(12, (512, 384)), 95)))
    agreement = scorer.score(image).evidence.grids[8].agreement
    gate = scorer.grid_gate
    scorer.grid_gate = GridGate(gate.periods, {**gate.centers, "jpeg": agreement}, gate.slope, gate.weak)
    by_threshold = {}
    for threshold in (0.3, 0.5, 0.7):
        scorer.threshold = threshold
        by_threshold[threshold] = scorer.score(image)
    first = by_threshold[0.3].scores
    assert first["clean"] <= LATTICE_KEPT_SHARE  # the lattice held: P(clean) was cut
    for threshold, result in by_threshold.items():
        assert result.scores == pytest.approx(first, abs=1e-9), threshold
        assert result.label == decide(first, threshold) == "jpeg", threshold


def test_a_small_jpeg_too_small_to_check_a_grid_on_is_caught_by_its_table_and_a_gradient_is_not():
    """An image with too few quadrants to vote on a grid (here 72x64: one tile) gets the gate's "weak" scaling
    and was never flagged; a JPEG of it saved whole shows its table at the origin. A smooth gradient of that size
    shows a lattice on one or two frequencies only, which is no table: it stays clean."""
    from ccscore import Scorer

    scorer = Scorer(BUNDLED_MODEL)
    art = draw_art(13, (72, 64))
    jpeg = scorer.score(Image.open(io.BytesIO(jpeg_bytes(art, 70))))
    assert jpeg.evidence.word == "weak"
    assert (jpeg.label, jpeg.quality_source, jpeg.quality) == ("jpeg", "table", 70)
    assert scorer.score(art).label == "clean"
    yy, _ = np.mgrid[0:71, 0:74]  # a dithered sky: each 8x8 block's one vertical coefficient is about -4, q85's step
    ramp = np.stack([12 + 0.33 * yy, 163 + 0.14 * yy, 186 + 0.14 * yy], -1)
    sky = np.floor(ramp + np.random.default_rng(0).random(ramp.shape)).astype(np.uint8)
    table = q.estimate_luma_table([sky], [(0, 0)])
    assert table.evidence >= 0.3 and table.frequencies_seen < 4  # a lattice, on too few frequencies
    assert scorer.score(sky).label == "clean"


# ---------------------------------------------------------------- selection and recompression


def test_flag_below_flags_only_lossy_images_below_the_quality():
    cut = Selection("flagged", 90)
    assert cut.flagged({"label": "jpeg", "quality": 85.0})
    assert not cut.flagged({"label": "jpeg", "quality": 92.0})
    assert not cut.flagged({"label": "jpeg", "quality": None})  # unknown: never acted on
    assert not cut.flagged({"label": "clean", "quality": None})
    assert not cut.flagged({"error": "bad"})
    assert Selection().flagged({"label": "webp", "quality": 99.0})
    assert Selection("clean", 90).takes({"label": "jpeg", "quality": 95.0})
    assert not Selection("clean", 90).takes({"error": "bad"})
    for bad in (0, 150):
        with pytest.raises(ValueError, match="--flag-below"):
            Selection("flagged", bad)


def test_recompressed_compares_pixels_with_the_header():
    jpeg95 = {"format": "jpeg", "quality": 95}
    assert recompressed(jpeg95, "jpeg", 60.0) is True
    assert recompressed(jpeg95, "jpeg", 94.0) is False
    assert recompressed(jpeg95, "jpeg", 85.0, "model") is False  # within the learned estimate's error
    assert recompressed(jpeg95, "jpeg", 75.0, "model") is True
    assert recompressed(jpeg95, "webp", 80.0) is True
    assert recompressed({"format": "png"}, "jpeg", 80.0) is True
    assert recompressed({"format": "webp", "lossless": True}, "webp", 80.0) is True
    assert recompressed({"format": "png"}, "clean", None) is False
    assert recompressed({"format": None}, "jpeg", 50.0) is None


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """q50 JPEG, q50 saved again at 95, q50 as PNG, q92 JPEG: textured art the bundled model flags."""
    folder = tmp_path_factory.mktemp("quality")
    art = draw_art(9, (512, 384))
    q50 = jpeg_bytes(art, 50)
    (folder / "q50.jpg").write_bytes(q50)
    (folder / "q50_as_q95.jpg").write_bytes(jpeg_bytes(Image.open(io.BytesIO(q50)), 95))
    Image.open(io.BytesIO(q50)).save(folder / "q50.png")
    (folder / "q92.jpg").write_bytes(jpeg_bytes(art, 92))
    return folder


@pytest.mark.skipif(not BUNDLED_MODEL.is_file(), reason="bundled model missing")
def test_records_carry_the_table_quality_container_and_recompression(saved):
    out = run_cli(str(saved), "--jsonl", "--details", "--workers", "0", timeout=300)
    assert out.returncode == 0, out.stderr
    records = {r["path"].rsplit("/", 1)[1]: r for r in map(json.loads, out.stdout.splitlines())}
    for name, quality, again in (("q50.jpg", 50, False), ("q50_as_q95.jpg", 50, True), ("q50.png", 50, True),
                                 ("q92.jpg", 92, False)):
        r = records[name]
        assert (r["label"], r["quality"], r["quality_source"], r["recompressed"]) == ("jpeg", quality, "table", again), name
        details = r["details"]
        assert details["table_kind"] == "ijg" and details["grid_offset"]["8x8"] == [0, 0]
        assert len(details["luma_table"]) == 8 and details["luma_table"][0][0] is None  # DC: not read
    assert records["q50_as_q95.jpg"]["container"]["quality"] == 95
    assert records["q50.png"]["container"]["format"] == "png"


@pytest.mark.skipif(not BUNDLED_MODEL.is_file(), reason="bundled model missing")
def test_flag_below_drives_select_actions_and_summary(saved, tmp_path):
    dest, summary = tmp_path / "low", tmp_path / "s.json"
    out = run_cli(str(saved), "--jsonl", "--flag-below", "90", "--select", "flagged", "--copy-to", str(dest),
                  "--summary-json", str(summary), "--workers", "0", timeout=300)
    assert out.returncode == 0, out.stderr
    shown = sorted(json.loads(line)["path"].rsplit("/", 1)[1] for line in out.stdout.splitlines())
    assert shown == ["q50.jpg", "q50.png", "q50_as_q95.jpg"]  # q92 is lossy but not below 90
    assert sorted(p.name for p in dest.iterdir()) == shown
    assert json.loads(summary.read_text())["flagged"] == 3
    bad = run_cli(str(saved), "--flag-below", "0")
    assert bad.returncode == 2 and "--flag-below" in bad.stderr


def _table_check_on(scorer, image, p_jpeg: float, vote: "GridVote"):
    """The table check on `image`'s own tiles, with tile outputs leaning JPEG by `p_jpeg` and one 8x8 vote."""
    from ccscore.evidence import ImageEvidence
    from ccscore.scorer import TileOutputs

    tiles, _ = scorer.tile(image)
    probs = np.zeros((len(tiles.boxes), len(scorer.labels)), np.float32)
    probs[:, scorer.labels.index("clean")] = 1.0 - p_jpeg
    probs[:, scorer.labels.index("jpeg")] = p_jpeg
    evidence = ImageEvidence(len(tiles.boxes), {8: vote})
    return scorer.table_check(TileOutputs(probs), evidence, tiles)


@pytest.mark.skipif(not BUNDLED_MODEL.is_file(), reason="bundled model missing")
def test_the_table_check_reads_at_the_origin_where_quadrants_disagree_and_where_they_agree_whatever_the_tiles():
    """Quadrants that vote but disagree (every textured block of text on white clips, so no phase wins) leave no
    grid to read on: the table is read at the origin, where a JPEG saved whole has it. Where quadrants agree well
    (LATTICE_AGREEMENT_ANY_LEAN), the table is read on their grid even when the tiles do not lean JPEG."""
    from ccscore import Scorer
    from ccscore.evidence import GridVote

    scorer = Scorer(BUNDLED_MODEL)
    art = draw_art(21, (256, 256))
    jpeg = Image.open(io.BytesIO(jpeg_bytes(art, 70)))
    disagreeing = GridVote(8, (3, 5), 1, 4)  # modal phase off the real grid, agreement 0
    held, table = _table_check_on(scorer, jpeg, 0.2, disagreeing)
    assert held and table.quality == 70
    assert _table_check_on(scorer, art, 0.2, disagreeing) == (False, None)  # clean: a guess that does not hold
    agreeing = GridVote(8, (0, 0), 8, 8)
    held, table = _table_check_on(scorer, jpeg, 0.001, agreeing)
    assert held and table.quality == 70
    some = GridVote(8, (0, 0), 3, 8)  # agreement 2/7: the tiles must lean JPEG for a read
    assert _table_check_on(scorer, jpeg, 0.001, some) == (False, None)


def test_unclipped_blocks_without_a_lattice_spare_the_clipped_repair(monkeypatch):
    """Read as a long shot (e.g. the table check's origin read), clean art with ample unclipped detail shows no
    lattice (evidence <= 0): its clipped blocks are not repaired for one (the repair is most of a table read's
    cost). Art clipped nearly everywhere still is, and other reads' clipped blocks always are."""
    rng = np.random.default_rng(5)
    noisy = np.clip(rng.normal(128, 30, (128, 128, 3)), 0, 255).astype(np.uint8)
    noisy[::16, ::16] = 255  # a clipped pixel in every fourth block
    calls = []
    original = q.fit_clipped
    monkeypatch.setattr(q, "fit_clipped", lambda luma, clip: calls.append(len(luma)) or original(luma, clip))
    table = estimate_luma_table([noisy], [(0, 0)], long_shot=True)
    assert table.lattice_free and table.kind is None and calls == []
    estimate_luma_table([noisy], [(0, 0)])
    assert len(calls) == 1
    calls.clear()
    text = np.full((128, 128, 3), 255, np.uint8)
    text[40:90:6, 20:100] = 0  # black lines on white: every textured block clips
    estimate_luma_table([decoded(jpeg_bytes(Image.fromarray(text), 60))], [(0, 0)], long_shot=True)
    assert calls  # no unclipped support: the clipped blocks are read


def test_a_jpeg_table_moves_every_other_labels_probability_to_jpeg():
    """A JPEG lattice on the 8x8 grid is JPEG's trace, whatever label the tiles lean to: clean and other codecs
    (a model with AVIF and JPEG XL labels called JPEG from some encoders AVIF) keep a tenth of their share."""
    from ccscore.scorer import LATTICE_KEPT_SHARE, proven

    scores = {"clean": 0.3, "jpeg": 0.2, "webp": 0.1, "avif": 0.4}
    checked = proven(scores, "jpeg")
    for label in ("clean", "webp", "avif"):
        assert checked[label] == pytest.approx(scores[label] * LATTICE_KEPT_SHARE)
    assert checked["jpeg"] == pytest.approx(0.2 + 0.8 * (1 - LATTICE_KEPT_SHARE))
    assert sum(checked.values()) == pytest.approx(1.0)


@pytest.mark.skipif(not BUNDLED_MODEL.is_file(), reason="bundled model missing")
def test_a_clean_pattern_repeated_on_the_grid_shows_no_table():
    """A block repeated across the grid (checkerboards, stripes, dither: any period dividing 8) is one
    observation: counted once per copy, its few coefficient values fit some IJG lattice by chance with a JPEG's
    support (this checkerboard read q50 at 3.9 per coefficient on its voted grid; the stripes, whose white
    columns clip, q76 at 0.66 at the origin). Clean, they hold no table wherever it is read; a JPEG of varied art
    still does."""
    from ccscore import Scorer
    from ccscore.evidence import GridVote

    scorer = Scorer(BUNDLED_MODEL)
    yy, xx = np.mgrid[0:256, 0:256]
    checks = np.where(((yy // 2 + xx // 2) % 2 == 0)[..., None], 153, 102).astype(np.uint8).repeat(3, axis=2)
    stripes = np.where((xx % 4 == 0)[..., None], 255, 204).astype(np.uint8).repeat(3, axis=2)
    agreeing, unvoted = GridVote(8, (0, 0), 4, 4), GridVote(8, None, 0, 0)
    for pattern in (checks, stripes):
        for vote in (agreeing, unvoted):
            held, _ = _table_check_on(scorer, pattern, 0.1, vote)
            assert not held
    for offset in ((0, 0), (1, 1)):  # one distinct block, however many copies
        table = q.estimate_luma_table([checks], [offset])
        assert table.blocks == 1 and not table.found
    jpeg = Image.open(io.BytesIO(jpeg_bytes(draw_art(21, (256, 256)), 70)))
    held, table = _table_check_on(scorer, jpeg, 0.1, agreeing)
    assert held and table.quality == 70


@pytest.mark.skipif(not BUNDLED_MODEL.is_file(), reason="bundled model missing")
def test_clean_art_with_saturated_strokes_shows_no_table_from_its_clipped_blocks():
    """Pixels with a channel at 0 or 255 count as clipped, free to move in the repair; clean art drawn in pure
    red or yellow is full of them, and flattening its blocks puts every coefficient on every lattice at zero,
    where the coarsest tables win (this x8 pixel art with aliased strokes, whose 8x8 quadrants all agree, read
    q1-8 at 1-2 per coefficient and was flagged JPEG). A JPEG of art on white, read on its clipped blocks, still
    shows its table."""
    from ccscore import Scorer
    from ccscore.evidence import GridVote

    rng = np.random.default_rng(13)
    palette = rng.integers(40, 215, (6, 3)).astype(np.uint8)
    art = Image.fromarray(np.repeat(np.repeat(palette[rng.integers(0, 6, (32, 32))], 8, 0), 8, 1))
    draw = ImageDraw.Draw(art)
    for _ in range(30):
        draw.line([tuple(int(v) for v in rng.integers(0, 256, 2)) for _ in range(2)],
                  fill=[(255, 0, 0), (255, 255, 0), (0, 0, 255), (255, 0, 255)][rng.integers(0, 4)], width=1)
    pixels = np.asarray(art)
    assert not q.estimate_luma_table([pixels], [(0, 0)]).found
    scorer = Scorer(BUNDLED_MODEL)
    held, _ = _table_check_on(scorer, art, 0.001, GridVote(8, (0, 0), 8, 8))
    assert not held
    luma, clip = clipped_jpeg_blocks(40)
    assert q.fit_clipped(luma, clip)[0] == 40


def test_a_read_of_tiles_without_a_whole_block_is_empty():
    """Tiles under 8 px, or offsets that leave no whole 8x8 block, give an empty read, not an error."""
    for tile, offset in ((np.zeros((5, 5, 3), np.uint8), (0, 0)), (np.full((12, 12, 3), 90, np.uint8), (7, 7))):
        table = estimate_luma_table([tile], [offset])
        assert table.blocks == 0 and table.quality is None and not table.found


def test_a_long_shot_read_that_shows_no_lattice_reads_no_more_tiles(monkeypatch):
    """For a long shot (e.g. at a guessed origin), the first tiles' unclipped blocks showing no lattice at all
    end the read (clean art: no table elsewhere either, and more tiles would cost more than the image's scoring);
    otherwise the other tiles are still read (their table may show where the first tiles' did not)."""
    from ccscore import scorer as scoring
    from ccscore.scorer import FIRST_TABLE_TILES, Scorer
    from ccscore.tiling import Tiles

    rng = np.random.default_rng(3)
    pixels = np.clip(rng.normal(128, 30, (4, 128, 128, 3)), 1, 254).astype(np.uint8)
    tiles = Tiles(pixels, [(128 * k, 0, 128 * k + 128, 128) for k in range(4)])
    reads = []
    original = scoring.estimate_luma_table
    monkeypatch.setattr(scoring, "estimate_luma_table",
                        lambda own, offsets, long_shot=False: reads.append(len(own))
                        or original(own, offsets, long_shot))
    assert Scorer.jpeg_table(tiles, (0, 0), long_shot=True).lattice_free
    assert reads == [FIRST_TABLE_TILES]
    reads.clear()
    Scorer.jpeg_table(tiles, (0, 0))
    assert reads == [FIRST_TABLE_TILES, 4]


@pytest.mark.skipif(not BUNDLED_MODEL.is_file(), reason="bundled model missing")
def test_a_read_where_the_tiles_do_not_lean_jpeg_reads_only_the_first_tiles(monkeypatch):
    """Quadrants that agree well get a read whatever the tiles lean, but where they do not lean JPEG it is a long
    shot (pixel art agrees on every grid): the first tiles alone, read economically (pixel art's reads cost 5x less);
    where they lean JPEG, the other tiles are read too when the first show no table."""
    from ccscore import Scorer
    from ccscore import scorer as scoring
    from ccscore.evidence import GridVote
    from ccscore.scorer import FIRST_TABLE_TILES

    scorer = Scorer(BUNDLED_MODEL)
    art = draw_art(22, (512, 384))
    assert len(scorer.tile(art)[0].boxes) > FIRST_TABLE_TILES
    reads = []
    original = scoring.estimate_luma_table
    monkeypatch.setattr(scoring, "estimate_luma_table",
                        lambda own, offsets, long_shot=False: reads.append((len(own), long_shot))
                        or original(own, offsets, long_shot))
    agreeing = GridVote(8, (0, 0), 8, 8)
    assert _table_check_on(scorer, art, 0.001, agreeing)[0] is False
    assert reads == [(FIRST_TABLE_TILES, True)]
    reads.clear()
    assert _table_check_on(scorer, art, 0.2, agreeing)[0] is False
    assert reads[0] == (FIRST_TABLE_TILES, False) and len(reads) == 2 and reads[1][0] > FIRST_TABLE_TILES
