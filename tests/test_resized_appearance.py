"""The resized-damage appearance network (ccscore.resized_appearance; trained by
export/ccscore_export/resized_appearance.py): JPEG damage downscaled after compression that no grid read of
Scorer.find_downscaled finds, judged on the look of the image's most textured cells."""

import json
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from conftest import assert_broken_bundled_network_fails_in_one_line, compress, draw_art, resized
from ccscore import scorer as scorer_module
from ccscore.resized_appearance import (BUNDLED_APPEARANCE, CELL, FIRST_CELLS, MAX_CELLS, MORE_CELLS_FROM,
                                        PROBE_BELOW, PROBE_CELLS, ResizedAppearance, SMALL_MAX_CELLS,
                                        WHOLE_CELL_STRIDE, appearance_input, cell_textures, conv3x3,
                                        overlapping_cells, textured_cells)
from ccscore.tiling import window_texture


@pytest.fixture(scope="module")
def scorer():
    from ccscore import Scorer

    return Scorer(device="cpu")


def recording(network: ResizedAppearance, read: list) -> ResizedAppearance:
    """`network`, appending the cells each `score` call is given to `read`."""
    class Recording(ResizedAppearance):
        def score(self, cells):
            read.append(cells)
            return super().score(cells)

    return Recording(**vars(network))


def spec(seed=0, threshold=0.5, layers=((4, 1), (4, 2))) -> dict:
    rng = np.random.default_rng(seed)
    convs, channels = [], 6
    for out, stride in layers:
        convs.append({"weight": rng.normal(size=(out, channels, 3, 3)).tolist(), "bias": rng.normal(size=out).tolist(),
                      "stride": stride})
        channels = out
    return {"convs": convs, "out": {"weight": rng.normal(size=channels).tolist(), "bias": 0.2}, "threshold": threshold}


def test_convolution_is_a_valid_3x3_convolution_at_its_stride():
    rng = np.random.default_rng(1)
    x, weight, bias = rng.normal(size=(2, 3, 9, 8)), rng.normal(size=(4, 3, 3, 3)), rng.normal(size=4)
    for stride in (1, 2):
        channels_first = x.transpose(1, 0, 2, 3).astype(np.float32)
        out = conv3x3(channels_first, weight.astype(np.float32), bias.astype(np.float32), stride).transpose(1, 0, 2, 3)
        rows, cols = (9 - 3) // stride + 1, (8 - 3) // stride + 1
        expected = np.zeros((2, 4, rows, cols))
        for i in range(rows):
            for j in range(cols):
                window = x[:, :, i * stride:i * stride + 3, j * stride:j * stride + 3]
                expected[:, :, i, j] = np.einsum("nchw,ochw->no", window, weight) + bias
        assert out.shape == expected.shape and np.allclose(out, expected, atol=1e-4)


def test_the_input_is_log_compressed_second_differences_of_y_cb_cr():
    yy, xx = np.mgrid[0:8, 0:10]
    grey = np.repeat((2 * xx ** 2 + yy)[..., None], 3, axis=2).astype(np.uint8)  # d2/dx2 = 4, d2/dy2 = 0
    x = appearance_input(grey[None])  # channels first
    assert x.shape == (6, 1, 6, 8)
    assert np.allclose(x[0, 0], np.log1p(4.0), atol=1e-4) and np.allclose(x[1, 0], 0, atol=1e-4)
    assert np.allclose(x[2:, 0], 0, atol=1e-4)  # grey: no chroma
    assert np.allclose(appearance_input(255 - grey[None])[0, 0], -np.log1p(4.0), atol=1e-4)  # the sign kept
    colour = np.zeros((8, 10, 3), np.uint8)
    colour[..., 0], colour[..., 1] = 2 * xx ** 2, yy ** 2  # R'' = 4 along x, G'' = 2 along y: each channel its own
    (r, g, _), (cb_r, cb_g, _), (cr_r, cr_g, _) = [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5],
                                                   [0.5, -0.418688, -0.081312]]
    expected = [4 * r, 2 * g, 4 * cb_r, 2 * cb_g, 4 * cr_r, 2 * cr_g]  # Y_x, Y_y, Cb_x, Cb_y, Cr_x, Cr_y
    x = appearance_input(colour[None])
    for channel, value in enumerate(expected):
        assert np.allclose(x[channel, 0], np.sign(value) * np.log1p(abs(value)), atol=1e-4), channel


def test_cell_textures_are_window_texture_of_each_whole_cell():
    """The cells' shares read all at once are each cell's `window_texture`, bit for bit (their order decides which
    cells are scored), on tiles of any size: only whole cells from the corner count."""
    rng = np.random.default_rng(3)
    for height, width, spread in ((128, 128, 3), (200, 130, 40), (64, 64, 90), (63, 300, 5), (130, 64, 255)):
        tile = (120 + rng.integers(-spread, spread + 1, (height, width, 3))).clip(0, 255).astype(np.uint8)
        shares = cell_textures(tile)
        assert shares.shape == (height // CELL, width // CELL)
        for row in range(shares.shape[0]):
            for col in range(shares.shape[1]):
                cell = tile[row * CELL:(row + 1) * CELL, col * CELL:(col + 1) * CELL]
                assert shares[row, col] == window_texture(cell)


def test_cells_are_the_most_textured_and_flat_ones_are_left_out():
    rng = np.random.default_rng(0)
    flat = np.full((128, 128, 3), 90, np.uint8)
    busy = (90 + rng.integers(-10, 11, (128, 128, 3))).clip(0, 255).astype(np.uint8)
    half = flat.copy()
    half[:, :64] = busy[:, :64]
    cells = textured_cells([flat, half])
    assert cells.shape == (2, CELL, CELL, 3) and all(window_texture(c) >= 0.05 for c in cells)
    # 8 cells of graded texture (a share of 0.1-0.8 of their pixels noisy): the most textured kept, in order
    graded = []
    for k in range(8):
        cell = np.full((CELL, CELL, 3), 90, np.uint8)
        cell[: 8 * (k + 1)] = busy[: 8 * (k + 1), :CELL]
        graded.append(cell)
    order = rng.permutation(8)
    tiles = [np.concatenate([graded[order[i]], graded[order[i + 1]]], axis=1) for i in range(0, 8, 2)]  # 64 x 128
    for most in (5, MAX_CELLS):
        kept = textured_cells(tiles, most)
        assert [window_texture(c) for c in kept] == sorted(window_texture(g) for g in graded)[::-1][:most]
    many = [np.tile(busy, (3, 3, 1))] * 2  # 72 textured cells: MAX_CELLS kept
    assert textured_cells(many).shape[0] == MAX_CELLS
    assert textured_cells([busy[:40]]).shape[0] == 0  # a tile smaller than a cell gives none
    assert textured_cells([]).shape == (0, CELL, CELL, 3)


def test_overlapping_cells_are_the_most_textured_windows_every_stride():
    """Every CELL px window at WHOLE_CELL_STRIDE px steps each way, those under the texture cut left out, the most
    textured first (ties row by row), at most max_cells."""
    rng = np.random.default_rng(4)
    for height, width in ((150, 151), (64, 200), (233, 97), (40, 300)):
        image = (120 + rng.integers(-30, 31, (height, width, 3))).clip(0, 255).astype(np.uint8)
        image[: height // 3] = 100  # a flat band: its windows are left out
        image[:, : width // 4] = (image[:, : width // 4] // 8) * 8  # coarser steps: other textures
        windows = [(window_texture(image[y:y + CELL, x:x + CELL]), y, x)
                   for y in range(0, height - CELL + 1, WHOLE_CELL_STRIDE)
                   for x in range(0, width - CELL + 1, WHOLE_CELL_STRIDE)]
        expected = sorted((w for w in windows if w[0] >= 0.05), key=lambda w: (-w[0], w[1], w[2]))
        for most in (3, MAX_CELLS):
            cells = overlapping_cells(image, most)
            assert len(cells) == min(most, len(expected))
            for cell, (_, y, x) in zip(cells, expected):
                assert np.array_equal(cell, image[y:y + CELL, x:x + CELL])
    assert overlapping_cells(np.full((200, 200, 3), 7, np.uint8)).shape == (0, CELL, CELL, 3)
    assert overlapping_cells(np.zeros((50, 300, 3), np.uint8)).shape == (0, CELL, CELL, 3)  # no whole window


def test_a_small_image_scores_the_higher_of_its_tiles_cells_and_its_whole_pixels():
    """`score_image`: the tiles' cells' score, and where they are SMALL_MAX_CELLS or fewer and the image's whole
    pixels are kept, the higher of that and its overlapping cells' score."""
    rng = np.random.default_rng(5)
    busy = lambda h, w, spread: (120 + rng.integers(-spread, spread + 1, (h, w, 3))).clip(0, 255).astype(np.uint8)  # noqa: E731
    whole = busy(192, 192, 30)
    centred = spec(6)  # moved so the whole's cells score about 0.5: every stage of `score` runs, none saturates
    centred["out"]["bias"] -= float(ResizedAppearance.from_spec(centred).logits(overlapping_cells(whole)).mean())
    network = ResizedAppearance.from_spec(centred)
    for few in ([whole[:128, :128]], [busy(128, 128, 5)]):  # its own pixels, or other (calmer) ones
        assert len(textured_cells(few)) <= SMALL_MAX_CELLS and len(overlapping_cells(whole)) == 25
        tiles_score, whole_score = network.score(textured_cells(few)), network.score(overlapping_cells(whole))
        assert 0.01 < whole_score < 0.99 and abs(tiles_score - whole_score) > 1e-3
        assert network.score_image(few, whole) == max(tiles_score, whole_score)
        assert network.score_image(few, None) == tiles_score  # a larger image: no whole kept
        assert network.score_image(few, np.full((192, 192, 3), 90, np.uint8)) == tiles_score  # no cell in the whole
    # the boundary: SMALL_MAX_CELLS cells in the tiles still read the whole, one more does not
    at_most = [busy(128, 64 * (SMALL_MAX_CELLS // 2), 30)]
    one_more = at_most + [busy(64, 64, 30)]
    assert [len(textured_cells(t)) for t in (at_most, one_more)] == [SMALL_MAX_CELLS, SMALL_MAX_CELLS + 1]
    assert network.score_image(at_most, whole) == max(network.score(textured_cells(at_most)),
                                                      network.score(overlapping_cells(whole)))
    assert network.score_image(one_more, whole) == network.score(textured_cells(one_more))
    assert network.score_image([], whole) == network.score(overlapping_cells(whole))  # no tile cell: the whole's
    assert network.score_image([], None) is None


def test_the_runtime_scores_a_small_image_on_its_whole_pixels_too(scorer, monkeypatch):
    """A small image (its whole pixels kept) whose tiles give few cells is scored on its tiles' cells and on its
    overlapping ones."""
    image = resized(draw_art(7, (300, 260)), 0.6)  # 180 x 156, clean: asked
    tiles = scorer.tile(image)[0]
    assert tiles.whole is not None and len(textured_cells(tiles.own())) <= SMALL_MAX_CELLS
    read = []
    monkeypatch.setattr(scorer, "resized_appearance", recording(scorer.resized_appearance, read))
    monkeypatch.setattr(scorer_module, "APPEARANCE_MAX_TILE_CLEAN", 1.0)  # asked however the head leans
    assert not scorer.score(image).flagged
    assert len(read) == 2 and np.array_equal(read[0], textured_cells(tiles.own()))
    assert np.array_equal(read[1], overlapping_cells(tiles.whole)) and len(read[1]) > len(read[0])


def test_the_score_is_the_sigmoid_of_the_first_cells_mean_logit_or_of_all_where_those_lean_lossy(monkeypatch):
    """Three stages, each read only where the one before asks: the PROBE_CELLS most textured (their score where it is
    under PROBE_BELOW), the FIRST_CELLS, all (where the first score MORE_CELLS_FROM); `pooled` of all the logits
    gives the same score (the export's check against torch pools so)."""
    rng = np.random.default_rng(2)
    cells = np.concatenate([rng.integers(60, 120, (FIRST_CELLS, CELL, CELL, 3)),  # busier first, then calmer ones
                            rng.integers(85, 95, (4, CELL, CELL, 3))]).astype(np.uint8)
    centred = spec()  # the first cells' mean logit moved to 0, where the sigmoid is steep
    centred["out"]["bias"] -= float(ResizedAppearance.from_spec(centred).logits(cells[:FIRST_CELLS]).mean())
    network = ResizedAppearance.from_spec(centred)
    logits = network.logits(cells)
    assert logits.shape == (FIRST_CELLS + 4,)
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    probe, first, every = (sigmoid(logits[:n].mean()) for n in (PROBE_CELLS, FIRST_CELLS, len(logits)))
    assert first != pytest.approx(every, abs=1e-4) and probe != pytest.approx(first, abs=1e-4) and probe > PROBE_BELOW
    read = []

    class Counting(ResizedAppearance):
        def logits(self, cells):
            read.append(len(cells))
            return super().logits(cells)

    counting = Counting(**vars(network))
    rest = FIRST_CELLS - PROBE_CELLS
    for probe_below, more_from, expected, reads in (
            (PROBE_BELOW, first + 1e-6, first, [PROBE_CELLS, rest]),
            (PROBE_BELOW, first - 1e-6, every, [PROBE_CELLS, rest, 4]),
            (probe + 1e-6, first - 1e-6, probe, [PROBE_CELLS])):  # the probe under its cut: nothing more read
        monkeypatch.setattr("ccscore.resized_appearance.PROBE_BELOW", probe_below)
        monkeypatch.setattr("ccscore.resized_appearance.MORE_CELLS_FROM", more_from)
        read.clear()
        assert counting.score(cells) == pytest.approx(expected, abs=1e-6) and read == reads  # the rest read only then
        assert ResizedAppearance.pooled(logits) == pytest.approx(expected, abs=1e-6)  # torch's check pools so
    assert counting.score(cells[:PROBE_CELLS]) == pytest.approx(probe, abs=1e-6)  # all there is: pooled as the first
    monkeypatch.setattr("ccscore.resized_appearance.PROBE_BELOW", PROBE_BELOW)
    assert network.score(cells[:3]) == pytest.approx(sigmoid(logits[:3].mean()), abs=1e-6)
    assert network.score(cells[:0]) is None and not network.flags(None)
    assert 0 < PROBE_BELOW < MORE_CELLS_FROM < 1 and PROBE_CELLS < FIRST_CELLS < MAX_CELLS


@pytest.mark.parametrize("broken", [
    lambda s: s["convs"][0].update(weight=np.zeros((4, 5, 3, 3)).tolist()),  # 5 channels in, where 6 come
    lambda s: s["convs"][1].update(bias=[0.0]),  # a bias per output channel
    lambda s: s["convs"][1].update(stride=3),
    lambda s: s["out"].update(weight=[0.0] * 5),  # the last convolution gives 4
    lambda s: s["out"].update(weight=[float("nan")] * 4),
    lambda s: s.update(threshold=1.5),
    lambda s: s.update(convs=[]),
    lambda s: s["convs"][1].update(stride=1.7),  # not truncated to 1
    lambda s: s.update(convs=[{**s["convs"][1], "weight": np.zeros((4, 6 if k == 0 else 4, 3, 3)).tolist(),
                               "stride": 2} for k in range(6)]),  # six stride-2 layers leave nothing of a cell
])
def test_a_network_that_does_not_fit_together_is_refused(broken):
    s = spec()
    broken(s)
    with pytest.raises(ValueError):
        ResizedAppearance.from_spec(s)


def test_a_broken_bundled_network_is_one_line_model_error_with_the_bundled_model_only(monkeypatch, tmp_path):
    from ccscore import resized_appearance

    assert_broken_bundled_network_fails_in_one_line(
        monkeypatch, tmp_path, resized_appearance, "BUNDLED_APPEARANCE", ResizedAppearance.bundled,
        ['{"convs": []}', "not json", "", json.dumps({**spec(), "model": "x"})], "unusable resized-damage appearance",
        "resized_appearance")


def test_the_bundled_network_is_for_the_bundled_model_and_compares_by_value(scorer, monkeypatch):
    from ccscore import Scorer, resized_appearance
    from ccscore.scorer import ScorerSettings

    network = ResizedAppearance.bundled()
    assert network.fitted_for == (scorer.info.name, scorer.info.version, scorer.model_digest)
    assert scorer.resized_appearance == network and 0 < network.threshold <= 1
    assert network != replace(network, threshold=network.threshold / 2)
    assert ScorerSettings.of(scorer) == ScorerSettings.of(scorer)
    assert ScorerSettings.of(scorer).build().resized_appearance == network  # a pipeline worker asks it too
    off = Scorer(device="cpu", judge_appearance=False)
    assert off.resized_appearance is None and ScorerSettings.of(off) != ScorerSettings.of(scorer)
    assert ScorerSettings.of(off).build().resized_appearance is None
    assert Scorer(device="cpu", judge_resized=False).resized_appearance is None
    other = replace(network, fitted_for=("ccscore-detector", scorer.info.version, "0" * 64))
    monkeypatch.setattr(resized_appearance.ResizedAppearance, "bundled", classmethod(lambda cls, n=other: n))
    assert Scorer(device="cpu").resized_appearance is None


def test_an_image_the_network_flags_is_jpeg_downscaled_with_its_score(scorer, monkeypatch):
    clean = resized(draw_art(5, (640, 512)), 0.8)
    base = scorer.score(clean)
    assert base.label == "clean"
    lean = float(np.mean([t.scores["clean"] for t in base.tiles]))
    monkeypatch.setattr(scorer, "resized_judge", replace(scorer.resized_judge, threshold=1.0))  # not the judge
    monkeypatch.setattr(scorer, "resized_appearance", replace(scorer.resized_appearance, threshold=0.0))
    monkeypatch.setattr(scorer_module, "APPEARANCE_MAX_TILE_CLEAN", 1.0)
    monkeypatch.setattr("ccscore.resized_appearance.PROBE_BELOW", 0.0)  # its first cells' score, not the probe's ~0
    found = scorer.score(clean)
    assert found.label == "jpeg" and found.evidence.word == "downscaled" and found.quality is None
    details = found.details()["downscaled"]
    assert 0 < details["appearance"] <= 1 and details["judged"] is None and details["blocks"] is None
    assert details["period"] > 0 and details["plane"] in ("luma", "chroma")
    # asked where the tiles lean lossy up to its own gate, however far the judge's
    monkeypatch.setattr(scorer_module, "JUDGE_MAX_TILE_CLEAN", lean - 1e-6)
    assert scorer.score(clean).label == "jpeg"
    monkeypatch.setattr(scorer_module, "APPEARANCE_MAX_TILE_CLEAN", lean - 1e-6)
    assert scorer.score(clean).label == "clean"


def test_a_network_that_flags_nothing_changes_nothing(scorer, monkeypatch):
    """Beside its own verdict the network gates the judge (JUDGE_MIN_APPEARANCE): with that cut at 0 it gates
    nothing, and a network that flags nothing leaves every record as without it."""
    monkeypatch.setattr(scorer_module, "JUDGE_MIN_APPEARANCE", 0.0)
    images = [resized(compress(draw_art(seed, (512, 448)), "JPEG", 85), 0.6) for seed in range(3)]
    images += [resized(draw_art(seed, (512, 448)), 0.7) for seed in range(2)]
    monkeypatch.setattr(scorer, "resized_appearance", None)
    without = [scorer.score(im).to_dict(with_tiles=True, with_details=True) for im in images]
    asked = []
    never = recording(replace(ResizedAppearance.bundled(), threshold=1.0), asked)
    monkeypatch.setattr(scorer, "resized_appearance", never)
    assert [scorer.score(im).to_dict(with_tiles=True, with_details=True) for im in images] == without
    assert asked  # it was asked, and changed nothing


def test_the_trainings_asking_rule_is_the_runtimes(scorer, monkeypatch):
    """`Scorer.asks_appearance` on a Scorer without the network (what the export's calibration counts as asked) is
    where the runtime asks it: with a network flagging everything, exactly the images it names become JPEG's by it.
    (The runtime also asks it about what the judge, not asked under the network's cut, would have flagged: a network
    flagging everything scores over that cut.)"""
    from ccscore import Scorer

    without = Scorer(device="cpu", judge_appearance=False)
    monkeypatch.setattr(scorer, "resized_appearance", replace(scorer.resized_appearance, threshold=0.0))
    images = [resized(draw_art(seed, (512, 448)), 0.8) for seed in range(4)]
    images += [np.asarray(compress(draw_art(9, (512, 448)), "JPEG", 70)), np.full((256, 256, 3), 40, np.uint8)]
    answers = [(without.asks_appearance(without.score(im)), scorer.score(im)) for im in images]
    assert any(a for a, _ in answers) and not all(a for a, _ in answers)
    for was_asked, result in answers:
        by_network = result.evidence is not None and result.evidence.downscaled_appearance is not None
        assert by_network == was_asked
    # what the judge flags is not asked of the network, by either (the judge asked whatever the network scores)
    monkeypatch.setattr(scorer_module, "JUDGE_MIN_APPEARANCE", 0.0)
    everything = replace(scorer.resized_judge, threshold=-1.0)
    monkeypatch.setattr(scorer, "resized_judge", everything)
    monkeypatch.setattr(without, "resized_judge", everything)
    judged = 0
    for image in images:
        result = scorer.score(image)
        if result.evidence is not None and result.evidence.downscaled_judged is not None:
            judged += 1
            assert result.evidence.downscaled_appearance is None
            assert not without.asks_appearance(without.score(image))
    assert judged


def _as_unproven_webp(result):
    """`result` as the head's gate might leave a downscaled JPEG: WebP's, nothing reading WebP's steps or decoder."""
    scores = {label: 0.0 for label in result.scores}
    scores.update(clean=0.05, webp=0.95)
    return replace(result, label="webp", scores=scores, webp=None, decoder=None, quality=80, quality_source="model")


@pytest.mark.parametrize("judge_flags, network_flags, proven, renamed", [
    (True, True, None, True), (True, False, None, False), (False, True, None, False), (True, True, "webp", False)])
def test_an_unproven_webp_verdict_becomes_jpeg_only_where_judge_and_network_both_flag(
        scorer, monkeypatch, judge_flags, network_flags, proven, renamed):
    from ccscore.scorer import TileReads

    image = resized(compress(draw_art(3, (640, 512)), "JPEG", 70), 0.7)
    tiles, size = scorer.tile(image)
    result = _as_unproven_webp(scorer._score_together([(None, tiles, size)])[0])
    result.decoder = proven
    monkeypatch.setattr(scorer, "resized_judge", replace(scorer.resized_judge, threshold=-1.0 if judge_flags else 2.0))
    monkeypatch.setattr(scorer, "resized_appearance",
                        replace(scorer.resized_appearance, threshold=0.0 if network_flags else 2.0))
    assert scorer.asks_rename(result) == (proven is None)
    scorer._judge_resized([(None, tiles, size)], [result], [TileReads(tiles)])
    if not renamed:
        assert result.label == "webp" and result.quality == 80 and result.evidence.downscaled_period is None
        return
    # the head's quality kept (approximate), as the grid's rename keeps it: --flag-below counts it as before
    assert result.label == "jpeg" and result.evidence.word == "downscaled"
    assert result.quality == 80 and result.quality_source == "model"
    assert result.scores["jpeg"] > result.scores["webp"]
    details = result.details()["downscaled"]
    assert 0 <= details["judged"] <= 1 and 0 <= details["appearance"] <= 1 and details["period"] > 0


def test_a_downscaled_jpeg_the_head_calls_webp_is_renamed_by_the_bundled_judge_and_network(scorer, monkeypatch):
    image = resized(compress(draw_art(2, (512, 448)), "JPEG", 85), 0.6)
    found = scorer.score(image)
    details = found.details()["downscaled"]
    assert found.label == "jpeg" and found.quality is not None and found.quality_source == "model"
    assert scorer.resized_judge.flags(details["judged"]) and scorer.resized_appearance.flags(details["appearance"])
    monkeypatch.setattr(scorer, "resized_appearance", None)
    assert scorer.score(image).label == "webp"


def test_a_real_webp_keeps_its_codec_whatever_judge_and_network_say(scorer, monkeypatch):
    """A WebP's own verdicts are proven by its steps or its decoder, and never asked to rename."""
    images = [compress(draw_art(seed, (512, 448)), "WEBP", quality) for seed, quality in ((1, 50), (2, 75))]
    before = [scorer.score(im) for im in images]
    assert all(r.label == "webp" for r in before)
    monkeypatch.setattr(scorer, "resized_judge", replace(scorer.resized_judge, threshold=-1.0))
    monkeypatch.setattr(scorer, "resized_appearance", replace(scorer.resized_appearance, threshold=0.0))
    assert not any(scorer.asks_rename(r) for r in before)
    assert [scorer.score(im).label for im in images] == ["webp", "webp"]


def test_the_judge_is_asked_only_where_the_network_scores_enough(scorer, monkeypatch):
    images = [resized(draw_art(seed, (512, 448)), scale) for seed in range(4) for scale in (0.6, 0.8)]
    images += [resized(compress(draw_art(seed, (512, 448)), "JPEG", 90), 0.7) for seed in range(4)]
    monkeypatch.setattr(scorer, "resized_appearance", replace(scorer.resized_appearance, threshold=2.0))  # flags none
    monkeypatch.setattr(scorer, "resized_judge", replace(scorer.resized_judge, threshold=2.0))  # flags none
    monkeypatch.setattr(scorer_module, "JUDGE_MAX_TILE_CLEAN", 1.0)  # asked however little the head leans lossy
    before = [scorer.score(im) for im in images]
    tiled = [scorer.tile(image)[0] for image in images]
    asked = [(k, scorer.resized_appearance.score_image(tiled[k].own(), tiled[k].whole))
             for k, result in enumerate(before) if scorer.asks_resized(result)]
    scores = sorted(score for _, score in asked)
    assert len(asked) >= 4 and scores[0] < scores[-1], asked
    monkeypatch.setattr(scorer, "resized_judge", replace(scorer.resized_judge, threshold=-1.0))  # flags all it is asked
    cut = (scores[len(scores) // 2 - 1] + scores[len(scores) // 2]) / 2
    monkeypatch.setattr(scorer_module, "JUDGE_MIN_APPEARANCE", cut)
    for k, score in asked:
        assert (scorer.score(images[k]).evidence.downscaled_judged is not None) == (score >= cut)
    # a network with no cells to score (None) leaves the judge asked
    monkeypatch.setattr(ResizedAppearance, "score", lambda self, cells: None)
    assert all(scorer.score(images[k]).evidence.downscaled_judged is not None for k, _ in asked)
    monkeypatch.undo()
    monkeypatch.setattr(scorer, "resized_judge", replace(scorer.resized_judge, threshold=-1.0))
    monkeypatch.setattr(scorer_module, "JUDGE_MAX_TILE_CLEAN", 1.0)
    monkeypatch.setattr(scorer_module, "JUDGE_MIN_APPEARANCE", 1.01)  # over every score: the judge never asked
    monkeypatch.setattr(scorer, "resized_appearance", None)  # without the network, the judge is asked about all
    assert all(scorer.score(images[k]).evidence.downscaled_judged is not None for k, _ in asked)


def test_the_bundled_network_scores_downscaled_jpeg_art_over_its_clean_twin(scorer):
    network = scorer.resized_appearance
    pairs = []
    for seed in range(6):
        art = draw_art(seed, (768, 640))
        damaged = resized(compress(art, "JPEG", 70), 0.7)
        clean = resized(art, 0.7)
        tiles = [scorer.tile(im)[0].own() for im in (damaged, clean)]
        pairs.append([network.score(textured_cells(t)) or 0.0 for t in tiles])
    damaged, clean = np.array(pairs).T
    assert all(network.flags(s) for s in damaged) and not any(network.flags(s) for s in clean), pairs


def test_batch_norm_folded_gives_torchs_network():
    torch = pytest.importorskip("torch")
    from ccscore_export.resized_appearance import (build_network, check_against_torch, folded_spec, runtime_logits,
                                                   runtime_scores, torch_input, torch_logits)

    torch.manual_seed(0)
    net = build_network()
    for module in net:
        if isinstance(module, torch.nn.BatchNorm2d):  # statistics and affine parts away from the identity
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)
    net.eval()
    rng = np.random.default_rng(0)
    rows = [{"cells": rng.integers(0, 256, (n, CELL, CELL, 3), dtype=np.uint8)} for n in (1, 4, 0, FIRST_CELLS)]
    rows[3]["cells"] = np.concatenate([rows[3]["cells"], np.full((4, CELL, CELL, 3), 90, np.uint8)])  # then flat ones
    # the last row's first cells centred on logit 0 (score 0.5 >= MORE_CELLS_FROM): its other cells are pooled too
    with torch.no_grad():
        net[-1].weight *= 100  # a random network's logits barely move between cells: spread them
        first = net(torch_input(torch.from_numpy(rows[3]["cells"][:FIRST_CELLS]))).mean()
        net[-1].bias -= first
    scored = np.array([np.nan if logits is None else ResizedAppearance.pooled(logits)  # torch's, pooled as ours
                       for logits in torch_logits(net, rows)])
    assert scored[3] != pytest.approx(0.5, abs=1e-3)  # all its cells, not the first 6's 0.5
    ours = runtime_scores(folded_spec(net), rows)
    assert np.isnan(scored[2]) and np.isnan(ours[2])
    assert np.nanmax(np.abs(ours - scored)) < 1e-4  # the staged scores pool the logits as torch's are pooled
    assert check_against_torch(runtime_logits(folded_spec(net), rows), torch_logits(net, rows)) < 1e-3
    spec_wrong = folded_spec(net)
    spec_wrong["out"]["bias"] += 1.0
    with pytest.raises(RuntimeError, match="differs from torch"):
        check_against_torch(runtime_logits(spec_wrong, rows), torch_logits(net, rows))
    with pytest.raises(RuntimeError, match="different cells"):
        check_against_torch(runtime_logits(folded_spec(net), rows[:3]) + [None], torch_logits(net, rows))


def test_the_exports_calibration_scores_a_small_image_as_the_runtime_does(tmp_path):
    """The calibration rows of a small image carry its whole pixels' cells (`whole_cells`), and the export's score of
    the row is the runtime's `score_image` (session 30: the threshold is chosen on what the runtime scores)."""
    from PIL import Image

    from ccscore import Scorer
    from ccscore_export.resized_appearance import _cells_task, runtime_scores

    path = tmp_path / "small.png"
    Image.fromarray(resized(draw_art(7, (300, 260)), 0.6)).save(path)  # 180 x 156: its whole pixels kept
    row = _cells_task((str(path), "clean", 0, True))
    tiles = Scorer(device="cpu").tile(str(path), cut_on_read=True)[0]
    assert len(row["cells"]) <= SMALL_MAX_CELLS and np.array_equal(row["whole_cells"], overlapping_cells(tiles.whole))
    for seed in range(3):
        network = ResizedAppearance.from_spec(spec(seed))
        assert runtime_scores(spec(seed), [row])[0] == network.score_image(tiles.own(), tiles.whole)
    assert "whole_cells" not in _cells_task((str(path), "clean", 0, False))  # training rows: the tiles' cells only
    large = {"cells": row["cells"][:1].repeat(SMALL_MAX_CELLS + 1, 0),
             "whole_cells": np.zeros((0, CELL, CELL, 3), np.uint8)}  # a larger image's row: no whole cells read
    assert runtime_scores(spec(0), [large])[0] == ResizedAppearance.from_spec(spec(0)).score(large["cells"])


def test_the_cell_cache_gives_back_every_rows_cells_and_whole_cells(tmp_path, monkeypatch):
    from ccscore_export import resized_appearance as export

    rng = np.random.default_rng(0)
    made = [{"path": f"{k}.png", "kind": "clean", "y": 0,
             "cells": rng.integers(0, 256, (n, CELL, CELL, 3), dtype=np.uint8),
             "whole_cells": rng.integers(0, 256, (w, CELL, CELL, 3), dtype=np.uint8)}
            for k, (n, w) in enumerate([(3, 0), (0, 5), (1, 2)])]
    reads = []
    monkeypatch.setattr(export, "collect", lambda root, score, workers=2, log=print: reads.append(root) or made)
    folder = tmp_path / "set"
    folder.mkdir()
    (folder / "manifest.csv").write_text("path,label,quality,kind,source,detail\n")
    cache = tmp_path / "cells"
    cache.mkdir()
    for _ in range(2):
        rows = export.collect_cached(folder, False, cache, "reader", log=lambda line: None)
        for got, want in zip(rows, made, strict=True):
            assert all(np.array_equal(got[name], want[name]) for name in export.CELL_ARRAYS)
            assert {k: v for k, v in got.items() if k not in export.CELL_ARRAYS} == {
                k: v for k, v in want.items() if k not in export.CELL_ARRAYS}
    assert len(reads) == 1  # the second from the cache
    (cache / "set-0123456789abcdef.npz").write_bytes(b"")  # an entry as sessions before 33 named them
    (cache / "set-notes.txt").write_bytes(b"")  # not an entry: kept
    entries = sorted(cache.glob("*.npz"))
    export.collect_cached(folder, False, cache, "reader, edited", log=lambda line: None)  # the runtime's code changed
    assert len(reads) == 2 and len(list(cache.glob("*.npz"))) == 1 and sorted(cache.glob("*.npz")) != entries
    assert (cache / "set-notes.txt").exists()
    export.collect_cached(folder, True, cache, "reader, edited", log=lambda line: None)  # read with verdicts: its own
    namesake = tmp_path / "elsewhere" / "set"  # another folder of the same name keeps its own entry
    namesake.mkdir(parents=True)
    (namesake / "manifest.csv").write_text("path,label,quality,kind,source,detail\n")
    export.collect_cached(namesake, False, cache, "reader, edited", log=lambda line: None)
    assert len(reads) == 4 and len(list(cache.glob("*.npz"))) == 3


def test_calibration_rows_are_written_without_their_cells_with_their_scores(tmp_path):
    from ccscore_export import resized_appearance as export

    cal = [{"path": "a.png", "kind": "clean", "y": 0, "verdict": "clean", "asked": True,
            "cells": np.zeros((2, CELL, CELL, 3), np.uint8), "whole_cells": np.zeros((0, CELL, CELL, 3), np.uint8)},
           {"path": "b.png", "kind": "jpeg_downscaled", "y": 1, "verdict": "jpeg", "asked": False,
            "cells": np.zeros((1, CELL, CELL, 3), np.uint8)}]
    export.write_rows(tmp_path / "rows.json", cal, np.array([0.25, 0.0], np.float32))
    assert json.loads((tmp_path / "rows.json").read_text()) == [
        {"path": "a.png", "kind": "clean", "y": 0, "verdict": "clean", "asked": True, "score": 0.25},
        {"path": "b.png", "kind": "jpeg_downscaled", "y": 1, "verdict": "jpeg", "asked": False, "score": 0.0}]


def test_recalibrating_a_network_trained_for_another_model_is_a_usage_error(tmp_path, capsys):
    pytest.importorskip("torch")
    from ccscore_export.resized_appearance import main

    other = {**spec(0), "max_clean": 0.002, "seed": 0, "epochs": 10, "fitted_on": {"train": [], "cal": []},
             "model": {"name": "ccscore-detector", "version": "0", "digest": "not this model's"}}
    (tmp_path / "other.json").write_text(json.dumps(other))
    (tmp_path / "cal").mkdir()
    (tmp_path / "cal" / "manifest.csv").write_text("path,label,quality,kind,source,detail\n")
    with pytest.raises(SystemExit) as stopped:
        main(["--cal", str(tmp_path / "cal"), "--out", str(tmp_path / "out.json"),
              "--recalibrate", str(tmp_path / "other.json")])
    assert stopped.value.code == 2 and not (tmp_path / "out.json").exists()
    assert "was not trained for this model file" in capsys.readouterr().err.splitlines()[-1]


@pytest.mark.parametrize("extra, says", [
    (["--train", "TRAIN"], "do not apply"), (["--seed", "3"], "do not apply"), (["--epochs", "4"], "do not apply"),
    (["MISSING.json"], "MISSING.json"), (["NOT_TRAINED.json"], "is not a trained network's JSON")])
def test_recalibrating_takes_no_training_arguments(tmp_path, capsys, extra, says):
    pytest.importorskip("torch")
    from ccscore_export.resized_appearance import main

    (tmp_path / "cal").mkdir()
    (tmp_path / "cal" / "manifest.csv").write_text("path,label,quality,kind,source,detail\n")
    (tmp_path / "NOT_TRAINED.json").write_text(json.dumps({"threshold": 0.5}))
    network = str(BUNDLED_APPEARANCE)
    if extra[0].endswith(".json"):  # another JSON named instead of the bundled one
        network, extra = str(tmp_path / extra[0]), []
    extra = [str(tmp_path / "cal") if arg == "TRAIN" else arg for arg in extra]
    with pytest.raises(SystemExit) as stopped:
        main(["--cal", str(tmp_path / "cal"), "--out", str(tmp_path / "out.json"), "--recalibrate", network, *extra])
    error = capsys.readouterr().err.splitlines()[-1]
    assert stopped.value.code == 2 and says in error and not (tmp_path / "out.json").exists()


@pytest.mark.parametrize("args, says", [
    ([], "--train is required"), (["--train", "CAL", "--epochs", "0"], "--epochs must be 1 or more"),
    (["--train", "CAL", "--max-clean", "1.5"], "--max-clean must be within [0, 1]"),
    (["--train", "CAL", "--workers", "0"], "--workers must be 1 or more"),
    (["--train", "CAL", "MISSING"], "MISSING")])
def test_training_arguments_are_checked_before_anything_is_read(tmp_path, capsys, args, says):
    from ccscore_export.resized_appearance import main

    (tmp_path / "cal").mkdir()
    (tmp_path / "cal" / "manifest.csv").write_text("path,label,quality,kind,source,detail\n")
    names = {"CAL": str(tmp_path / "cal"), "MISSING": str(tmp_path / "MISSING")}
    with pytest.raises(SystemExit) as stopped:
        main(["--cal", str(tmp_path / "cal"), "--out", str(tmp_path / "out.json"),
              *[names.get(arg, arg) for arg in args]])
    error = capsys.readouterr().err.splitlines()[-1]  # the usage line above it names every option
    assert stopped.value.code == 2 and says in error and not (tmp_path / "out.json").exists()


def test_recalibrating_keeps_the_network_and_says_what_was_chosen_again(tmp_path):
    pytest.importorskip("torch")
    from ccscore_export.resized_appearance import main

    cal = tmp_path / "cal"
    (cal / "clean").mkdir(parents=True)
    (cal / "jpeg_downscaled").mkdir()
    lines = ["path,label,quality,kind,source,detail"]
    for seed in range(2):
        art = draw_art(40 + seed)
        art.save(cal / "clean" / f"{seed}.png")
        Image.fromarray(resized(compress(art, "JPEG", 60), 0.7)).save(cal / "jpeg_downscaled" / f"{seed}.png")
        lines += [f"clean/{seed}.png,0,,clean,{seed}.png,",
                  f"jpeg_downscaled/{seed}.png,1,60,jpeg_downscaled,{seed}.png,"]
    (cal / "manifest.csv").write_text("\n".join(lines) + "\n")
    main(["--cal", str(cal), "--out", str(tmp_path / "out.json"), "--recalibrate", str(BUNDLED_APPEARANCE),
          "--workers", "1"])
    before, after = json.loads(BUNDLED_APPEARANCE.read_text()), json.loads((tmp_path / "out.json").read_text())
    assert after["convs"] == before["convs"] and after["out"] == before["out"]
    assert (after["seed"], after["epochs"], after["model"]) == (before["seed"], before["epochs"], before["model"])
    assert after["fitted_on"]["train"] == before["fitted_on"]["train"] and after["fitted_on"]["cal"] == [str(cal)]
    assert after["recalibrated"] == {"threshold_before": before["threshold"], "max_clean_before": before["max_clean"],
                                     "cal_before": before["fitted_on"]["cal"]}
    assert 0.0 < after["threshold"] <= 1.0
