"""Damage upscaled x2 after compression: found on the image halved (Scorer.halve_upscaled, tiling.halved_tiles)."""

import json

import numpy as np
import pytest
from PIL import Image

from conftest import compress, draw_art, run_cli
from ccscore.tiling import UPSCALE_MIN_CLIFF, content_tiles, halved_tiles, upscale_cliff

KERNELS = {"bicubic": Image.BICUBIC, "lanczos": Image.LANCZOS, "bilinear": Image.BILINEAR}


def upscaled(im: Image.Image, kernel: str) -> np.ndarray:
    return np.asarray(im.resize((2 * im.width, 2 * im.height), KERNELS[kernel]).convert("RGB"))


def first_tiles_cliff(rgb: np.ndarray) -> float:
    return upscale_cliff(content_tiles(rgb, 128, max_tiles=8).pixels[:2])


@pytest.fixture(scope="module")
def scorers():
    from ccscore import Scorer

    return Scorer(device="cpu"), Scorer(device="cpu", halve_upscaled=False)


@pytest.mark.parametrize("seed", [1, 3])
@pytest.mark.parametrize("kernel", sorted(KERNELS))
def test_an_x2_upscale_shows_the_spectral_cliff(seed, kernel):
    art = draw_art(seed)
    source, x2 = first_tiles_cliff(np.asarray(art)), first_tiles_cliff(upscaled(art, kernel))
    assert x2 >= UPSCALE_MIN_CLIFF and x2 > 1.4 * source
    if seed == 1:  # the test art is blurred a little: some seeds' sources come near the cliff too
        assert source < UPSCALE_MIN_CLIFF


def test_only_images_that_look_upscaled_and_hold_a_halved_tile_are_halved():
    art = draw_art(1)
    rgb = np.asarray(art)
    assert halved_tiles(rgb, content_tiles(rgb, 128), 128) is None  # no cliff
    big = upscaled(art, "bicubic")  # 768 x 640
    halved = halved_tiles(big, content_tiles(big, 128), 128)
    assert halved is not None and len(halved.boxes)
    assert all(r <= 384 and b <= 320 for _, _, r, b in halved.boxes)  # in halved pixels
    small = upscaled(art.resize((120, 100)), "bicubic")  # halved, smaller than a tile
    assert first_tiles_cliff(small) >= UPSCALE_MIN_CLIFF
    assert halved_tiles(small, content_tiles(small, 128), 128) is None


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_jpeg_upscaled_x2_is_flagged_halved_and_its_clean_source_upscaled_is_not(scorers, seed):
    scorer, without = scorers
    art = draw_art(seed)
    damaged = upscaled(compress(art, "JPEG", 60), "bicubic")
    assert without.score(damaged).label == "clean"  # the grid doubled to 16 px: unseen at the image's own scale
    result = scorer.score(damaged)
    assert result.flagged and result.evidence.word == "halved"
    assert result.quality is None or result.quality_source == "model"
    assert result.table is None and result.decoder is None
    width, height = result.size
    assert (width, height) == (768, 640)
    assert all(r - l == 256 and b - t == 256 and r <= width and b <= height for l, t, r, b in
               (tile.box for tile in result.tiles))  # halved tiles' boxes, back in image pixels
    clean = scorer.score(upscaled(art, "bicubic"))
    assert clean.label == "clean" and clean.evidence.word == "grid"


def test_damage_seen_at_the_image_own_scale_is_not_judged_again(scorers):
    scorer, _ = scorers
    result = scorer.score(np.asarray(compress(draw_art(1), "JPEG", 60)))
    assert result.label == "jpeg" and result.evidence.word == "grid" and result.quality_source == "table"


@pytest.mark.parametrize("workers", ["0", "1", "2"])
def test_the_score_command_finds_it_whichever_process_scores(tmp_path, monkeypatch, scorers, workers):
    """0: decoded and scored here; 1: a worker decodes, the main process scores (the halved tiles travel);
    2: the workers score (they outnumber the session's one thread, whatever the machine's cores)."""
    scorer, _ = scorers
    monkeypatch.setenv("CCSCORE_THREADS", "1")
    art = draw_art(2)
    Image.fromarray(upscaled(compress(art, "JPEG", 60), "lanczos")).save(tmp_path / "jpeg-x2.png")
    Image.fromarray(upscaled(art, "lanczos")).save(tmp_path / "clean-x2.png")
    odd = upscaled(compress(draw_art(1), "JPEG", 60), "bicubic")[1:, 1:]  # judged on the halving's alternative
    Image.fromarray(np.ascontiguousarray(odd)).save(tmp_path / "jpeg-x2-odd.png")
    x4 = compress(draw_art(3, (320, 256)), "JPEG", 60)  # halved twice: the nested halved tiles travel too
    Image.fromarray(np.asarray(x4.resize((1280, 1024), Image.LANCZOS))[1:, 2:]).save(tmp_path / "jpeg-x4.png")
    done = run_cli(str(tmp_path), "--jsonl", "--workers", workers, "--device", "cpu")
    records = {r["path"].rsplit("/", 1)[-1]: r for r in map(json.loads, done.stdout.splitlines())}
    for name, record in records.items():
        expected = scorer.score(tmp_path / name).to_dict()
        assert {k: record[k] for k in ("label", "evidence", "grid_agreement")} == \
            {k: expected[k] for k in ("label", "evidence", "grid_agreement")}
        assert record["scores"] == pytest.approx(expected["scores"], abs=1e-6)  # records keep 6 decimals
        assert (record["quality"] is None) == (expected["quality"] is None)
    assert all(records[name]["evidence"] == "halved" and records[name]["label"] != "clean"
               for name in ("jpeg-x2.png", "jpeg-x2-odd.png", "jpeg-x4.png"))
    assert records["clean-x2.png"]["label"] == "clean"
    if workers == "0":  # the readable line says where the damage was seen
        lines = run_cli(str(tmp_path / "jpeg-x2.png"), "--device", "cpu").stdout.splitlines()
        assert len(lines) == 1 and "seen halved (upscaled after compression)" in lines[0]


def test_a_scorer_whose_grid_gate_is_taken_away_judges_nothing_halved():
    """The halved verdict stands on the gate's grid votes: a Scorer built with the gate and then set without one
    (as calibration sets grid_gate on a built Scorer) scores upscaled damage as the model alone does."""
    from ccscore import Scorer

    damaged = upscaled(compress(draw_art(1), "JPEG", 60), "bicubic")
    gateless, plain = Scorer(device="cpu"), Scorer(device="cpu", halve_upscaled=False)
    assert gateless.halve_upscaled
    gateless.grid_gate = plain.grid_gate = None
    result, expected = gateless.score(damaged), plain.score(damaged)
    assert (result.label, result.scores, result.evidence) == (expected.label, expected.scores, None)


@pytest.mark.parametrize("offset", [(0, 0), (1, 0), (1, 1)])
@pytest.mark.parametrize("size", [(513, 257), (256, 256), (300, 1001)])
def test_halved_tiles_are_the_whole_image_reduced_at_odd_borders_and_under_alpha(size, offset):
    """HalvedImage reads crops of the source: its tiles must be those of the whole (flattened) image reduced 2x2,
    the last row and column of an odd side included, whether Pillow or an array holds the pixels."""
    from ccscore.images import DecodedImage

    width, height = size
    rgba = np.asarray(draw_art(4).convert("RGBA").resize(size, Image.BICUBIC)).copy()
    rgba[: height // 3, :, 3] = 0  # transparent: flattened on white before halving
    for decoded in (DecodedImage.from_pil(Image.fromarray(rgba, "RGBA")), DecodedImage.from_array(rgba)):
        x, y = offset
        halved = decoded.halved(offset)  # the first column (row) left out where the offset is 1
        whole = np.asarray(Image.fromarray(np.ascontiguousarray(decoded.rgb()[y:, x:])).reduce(2))
        assert halved.size == (whole.shape[1], whole.shape[0]) == ((width - x + 1) // 2, (height - y + 1) // 2)
        assert np.array_equal(halved.crop(0, 0, *halved.size), whole)
        tiles = content_tiles(halved, 128)
        assert len(tiles.boxes) and all(np.array_equal(tile, whole[t:b, l:r])
                                        for tile, (l, t, r, b) in zip(tiles.pixels, tiles.boxes))


@pytest.mark.parametrize("size, found", [((250, 240), False), ((180, 400), True)])
def test_a_halved_image_of_one_tile_each_way_is_what_stays_clean(scorers, size, found):
    """As the README says: an upscale under 512 px each way (500x480 here) holds one halved tile and is not found
    halved, while one with a short side of 360 px but 800 px long holds several and is."""
    scorer, _ = scorers
    damaged = np.asarray(compress(draw_art(1, size), "JPEG", 60).resize((2 * size[0], 2 * size[1]), Image.BICUBIC))
    tiles, _ = scorer.tile(damaged)
    assert (len(tiles.halved.boxes) > 1) == found
    assert (scorer.score(damaged).evidence.word == "halved") == found


def test_one_halved_tile_is_too_few_votes_for_a_verdict(scorers, monkeypatch):
    """An upscale whose halved image holds one tile (here 360x300 -> 180x150): its four quadrants share one patch
    of content, too little to tell a grid across the image (HALVED_MIN_VOTES), so it stays clean. Without the
    rule the same image would be flagged halved: the rule, not the model, decides here."""
    import ccscore.scorer as scorer_module

    scorer, _ = scorers
    damaged = np.asarray(compress(draw_art(1, (180, 150)), "JPEG", 60).resize((360, 300), Image.BICUBIC))
    tiles, _ = scorer.tile(damaged)
    assert tiles.halved is not None and len(tiles.halved.boxes) == 1
    assert scorer.score(damaged).label == "clean"
    monkeypatch.setattr(scorer_module, "HALVED_MIN_VOTES", 0)
    result = scorer.score(damaged)
    assert result.flagged and result.evidence.word == "halved"


@pytest.mark.parametrize("crop", [(1, 0), (0, 1), (1, 1)])
def test_an_x2_upscale_cropped_at_an_odd_offset_is_halved_from_its_pairs(scorers, crop):
    """Halved from the image's origin, an odd crop's 2x2 blocks straddle the source's pixels (upscale_pairing): the
    halving from where the pairs start finds it, its tiles' boxes starting there."""
    from ccscore.tiling import upscale_pairing

    scorer, _ = scorers
    x, y = crop
    damaged = np.ascontiguousarray(upscaled(compress(draw_art(1), "JPEG", 60), "bicubic")[y:, x:])
    assert upscale_pairing(content_tiles(damaged, 128)) == crop
    assert halved_tiles(damaged, content_tiles(damaged, 128), 128).alternative.origin == crop
    result = scorer.score(damaged)
    assert result.label == "jpeg" and result.evidence.word == "halved"
    assert all(left % 2 == x and top % 2 == y for left, top, _, _ in (tile.box for tile in result.tiles))
    uncropped = upscaled(compress(draw_art(1), "JPEG", 60), "bicubic")
    assert halved_tiles(uncropped, content_tiles(uncropped, 128), 128).alternative is None  # pairs at the origin


def upscaled_x4(im: Image.Image, kernel: str) -> np.ndarray:
    return np.asarray(im.resize((4 * im.width, 4 * im.height), KERNELS[kernel]).convert("RGB"))


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("kernel", ["bicubic", "lanczos"])
def test_jpeg_upscaled_x4_is_found_halved_twice_and_its_clean_source_upscaled_is_not(scorers, seed, kernel):
    scorer, without = scorers
    art = draw_art(seed, (320, 256))
    damaged = upscaled_x4(compress(art, "JPEG", 60), kernel)  # 1280 x 1024: halved twice, 320 x 256 (4 tiles)
    assert without.score(damaged).label == "clean"
    result = scorer.score(damaged)
    assert result.flagged and result.evidence.word == "halved"
    assert result.details()["halved"] == {"times": 2, "from": [0, 0]}
    assert all(r - l == 512 and b - t == 512 for l, t, r, b in (tile.box for tile in result.tiles))
    clean = scorer.score(upscaled_x4(art, kernel))
    assert clean.label == "clean" and clean.details()["halved"] is None


def test_an_x4_upscale_shows_its_cliff_an_octave_lower_and_the_x2_cliff_once_halved():
    art = draw_art(1, (320, 256))
    x4 = upscaled_x4(art, "bicubic")
    tiles = content_tiles(x4, 128)
    assert upscale_cliff(tiles.pixels[:2], factor=4) >= UPSCALE_MIN_CLIFF
    own = draw_art(1, (640, 512))  # the same kind of art at that size, not upscaled
    assert upscale_cliff(content_tiles(np.asarray(own), 128).pixels[:2], factor=4) < UPSCALE_MIN_CLIFF
    halved = halved_tiles(x4, tiles, 128)
    assert halved.scale == 2 and upscale_cliff(halved.pixels[:2]) >= UPSCALE_MIN_CLIFF
    assert halved.halved is not None and halved.halved.scale == 4
    assert halved.halved.halved is None  # MAX_HALVINGS: never a third time


def test_halvings_are_judged_once_then_twice_each_from_the_origin_before_the_pairs():
    from ccscore.tiling import Tiles, halvings

    def tiles(name):
        t = Tiles(np.zeros((0, 128, 128, 3), np.uint8), [])
        t.name = name
        return t

    native, once, once_alt, twice, twice_alt, alt_twice = (tiles(n) for n in ("native", "h", "ha", "hh", "hha", "hah"))
    native.halved, once.alternative, once.halved, twice.alternative, once_alt.halved = once, once_alt, twice, twice_alt, alt_twice
    assert [[t.name for t in level] for level in halvings(native)] == [["h", "ha"], ["hh", "hha", "hah"]]
    assert halvings(twice) == []


@pytest.mark.parametrize("crop", [(1, 1), (2, 0), (3, 2)])
def test_an_x4_upscale_cropped_anywhere_is_halved_from_where_its_quads_start(scorers, crop):
    """Cropped by (x, y), an x4 upscale's 4x4 pixel quads start at (-x, -y) mod 4: read as the pairs of the image
    (upscale_pairing), then those of the image halved from there, one of the halvings twice starts there. (The
    halving from the origin, judged first, may find the damage already: its blocks straddle the quads, which
    smears the grid less than at x2.)"""
    from ccscore.tiling import halvings

    scorer, _ = scorers
    x, y = crop
    damaged = np.ascontiguousarray(upscaled_x4(compress(draw_art(1, (320, 256)), "JPEG", 60), "bicubic")[y:, x:])
    tiles = content_tiles(damaged, 128)
    tiles.halved = halved_tiles(damaged, tiles, 128)
    once, twice = halvings(tiles)
    assert [t.scale for t in once] == [2] * len(once) and [t.scale for t in twice] == [4] * len(twice)
    assert (-x % 4, -y % 4) in [t.origin for t in twice]
    result = scorer.score(damaged)
    assert result.flagged and result.evidence.word == "halved" and result.details()["halved"]["times"] == 2


def test_an_image_with_an_x4_cliff_alone_is_halved_once_only_to_be_halved_again(scorers, monkeypatch):
    """Halved once, an x4 upscale is an x2 one whose grid still hides: that halving is a stepping stone, never
    judged (judging it flagged a clean supertux backdrop of the report set), while the next one is."""
    import ccscore.tiling as tiling

    real, asked = tiling.upscale_cliffs, []

    def x4_cliff_alone(pixels, factors=(2,), stop_below=0.0):  # the image's own tiles show only an x4 cliff
        asked.append(factors)
        return tuple(5.0 if factor == 4 or len(asked) > 1 else 1.0 for factor in factors)

    scorer, _ = scorers
    damaged = upscaled(compress(draw_art(1, (640, 512)), "JPEG", 60), "bicubic")  # x2: its damage shows halved once
    monkeypatch.setattr(tiling, "upscale_cliffs", x4_cliff_alone)
    tiles, _ = scorer.tile(damaged)
    assert asked[0] == (2, 4) and tiles.halved.stepping_stone and not tiles.halved.halved.stepping_stone
    asked.clear()
    result = scorer.score(damaged)
    assert asked[0] == (2, 4)
    assert result.evidence.word != "halved" or result.details()["halved"]["times"] == 2
    monkeypatch.setattr(tiling, "upscale_cliffs", real)
    assert scorer.score(damaged).details()["halved"] == {"times": 1, "from": [0, 0]}


@pytest.mark.parametrize("first, second", [((0, 0), (0, 0)), ((1, 0), (1, 1)), ((1, 1), (0, 1))])
def test_an_image_halved_twice_is_the_whole_image_reduced_by_4_from_both_offsets(first, second):
    """Halved again, a HalvedImage reads the source once per crop, reduced by 4 from the offsets combined: the same
    blocks as halving twice (rounded once), odd borders and alpha included."""
    from ccscore.images import DecodedImage

    rgba = np.asarray(draw_art(4).convert("RGBA").resize((1031, 777), Image.BICUBIC)).copy()
    rgba[:200, :, 3] = 60
    x, y = first[0] + 2 * second[0], first[1] + 2 * second[1]
    for decoded in (DecodedImage.from_pil(Image.fromarray(rgba, "RGBA")), DecodedImage.from_array(rgba)):
        twice = decoded.halved(first).halved(second)
        whole = np.asarray(Image.fromarray(np.ascontiguousarray(decoded.rgb()[y:, x:])).reduce(4))
        assert twice.size == (whole.shape[1], whole.shape[0]) == ((1031 - x + 3) // 4, (777 - y + 3) // 4)
        assert np.array_equal(twice.crop(0, 0, *twice.size), whole)
        twice_by_halves = decoded.halved(first).rgb()[second[1]:, second[0]:]
        assert np.abs(np.asarray(Image.fromarray(np.ascontiguousarray(twice_by_halves)).reduce(2)).astype(int)
                      - whole).max() <= 1  # halving twice rounds twice
        tiles = content_tiles(twice, 128)
        assert len(tiles.boxes) and all(np.array_equal(tile, whole[t:b, l:r])
                                        for tile, (l, t, r, b) in zip(tiles.pixels, tiles.boxes))


@pytest.mark.parametrize("grid, found_once, found_twice", [(4, True, False), (8, True, True)])
def test_halved_twice_only_jpeg_grid_decides(scorers, monkeypatch, grid, found_once, found_twice):
    """A verdict on the image halved once stands on either grid; halved twice, only on JPEG's 8x8 grid: smoothly
    upscaled pixel art shows its cells' 4 px grid there (WebP-like) as often as damage does."""
    from ccscore.evidence import GridVote, ImageEvidence
    from ccscore.results import ScoreResult
    from ccscore.tiling import Tiles

    scorer, _ = scorers
    votes = {period: GridVote(period, (0, 0), 9 if period == grid else 2, 9) for period in (4, 8)}

    def flagged_on(items, checks=True):  # every halved candidate judged lossy on `grid`
        return [ScoreResult("webp" if grid == 4 else "jpeg", {"clean": 0.1, "jpeg": 0.45, "webp": 0.45, "avif": 0.0,
                                                               "jxl": 0.0}, evidence=ImageEvidence(2, votes))
                for _ in items]

    for scale, found in ((2, found_once), (4, found_twice)):
        halved = Tiles(np.zeros((2, 128, 128, 3), np.uint8), [(0, 0, 128, 128), (128, 0, 256, 128)], scale=scale)
        native = Tiles(np.zeros((0, 128, 128, 3), np.uint8), [], halved=halved)
        results = [ScoreResult("clean", {"clean": 1.0, "jpeg": 0.0, "webp": 0.0, "avif": 0.0, "jxl": 0.0},
                               evidence=ImageEvidence(2, votes))]
        monkeypatch.setattr(scorer, "_score_together", flagged_on)
        scorer._judge_halved([("x.png", native, (1024, 1024))], results)
        monkeypatch.undo()
        assert results[0].flagged == found and (not found or results[0].evidence.halvings == scale.bit_length() - 1)


@pytest.mark.parametrize("size, pairs, second_cliff, kept", [
    ((1280, 1024), (1, 1), True, [(1, 1)]),  # the origin's halving is never halved again: not cut
    ((1280, 1024), (0, 0), False, []),  # halved once, no x2 cliff: no second halving, the step leads nowhere
    ((700, 500), (0, 0), True, []),  # halved once, too small to be halved again (350 x 250)
])
def test_a_stepping_stone_is_cut_only_where_it_leads_to_a_second_halving(monkeypatch, size, pairs, second_cliff,
                                                                         kept):
    """A halving the image's x4 cliff alone asked for is never judged: its tiles are cut (and travel from the
    workers) only where they are halved again."""
    import ccscore.tiling as tiling

    def x4_cliff_alone(pixels, factors=(2,), stop_below=0.0):
        return tuple(5.0 if factor == 4 or (second_cliff and factors != (2, 4)) else 1.0 for factor in factors)

    monkeypatch.setattr(tiling, "upscale_cliffs", x4_cliff_alone)
    monkeypatch.setattr(tiling, "upscale_pairing", lambda tiles: pairs if tiles.scale == 1 else (0, 0))
    rgb = np.asarray(draw_art(1, size))
    tiles = content_tiles(rgb, 128)
    tiles.halved = halved_tiles(rgb, tiles, 128)
    levels = tiling.halvings(tiles)
    assert [t.origin for t in (levels[0] if levels else [])] == kept
    assert all(t.stepping_stone and t.halved is not None for t in (levels[0] if levels else []))
