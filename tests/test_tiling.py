"""Tiling: which tiles count as flat, and tiles cut as they are read."""

from __future__ import annotations

import numpy as np
import pytest

from ccscore.tiling import MIN_TILE_STD, SPARSE_ROWS, SURELY_TEXTURED_STD, Tiles, luma, without_flat


def plain_rule(pixels: np.ndarray) -> np.ndarray:
    """The definition without_flat must keep to: every pixel's luma, its std against MIN_TILE_STD."""
    return luma(pixels).std(axis=(1, 2)) >= MIN_TILE_STD


def adversarial_tiles(size: int, rng: np.random.Generator) -> np.ndarray:
    """Tiles on both sides of MIN_TILE_STD, and of the sparse rows' bound, built to fool a shortcut."""
    tiles = []
    flat = np.full((size, size, 3), 128, np.uint8)
    tiles += [flat, np.zeros_like(flat), np.full_like(flat, 255)]
    # Near-flat noise whose std sweeps across 1 (and across the bound on the sparse rows).
    for std in np.linspace(0.6, 3.5, 60):
        tiles.append(np.clip(np.round(128 + rng.normal(0, std, (size, size, 1))), 0, 255).repeat(3, 2))
    # Two levels one apart, in a share p of the pixels: std sqrt(p (1 - p)), 0.5 at most: flat.
    for share in (0.1, 0.5, 0.9):
        tiles.append((128 + (rng.random((size, size, 1)) < share)).repeat(3, 2))
    # Two levels d apart in half the pixels: std d / 2, just below, at and just above 1.
    for step in (1, 2, 3):
        tiles.append((128 + step * (rng.random((size, size, 1)) < 0.5)).repeat(3, 2))
    # Detail only on the rows the shortcut reads, and only on the rows it skips, of amplitudes around the bounds.
    read = np.zeros(size, bool)
    read[::SPARSE_ROWS] = True
    for amplitude in np.linspace(0.5, 8, 40):
        wave = np.round(amplitude * np.sign(np.sin(np.arange(size) * 1.7)))
        for rows in (read, ~read):
            tile = np.full((size, size, 3), 128.0)
            tile[rows] += wave[None, :, None]
            tiles.append(tile)
    # Checkerboards at stride 2 (a 2x2 cell's corners alike), at single-pixel steps, in one channel or all.
    yy, xx = np.mgrid[:size, :size]
    for period in (1, 2):
        board = ((yy // period + xx // period) % 2).astype(float)
        for amplitude in (1, 2, 3, 5):
            tiles.append(np.repeat(128 + amplitude * board[..., None], 3, 2))
            blue = np.full((size, size, 3), 128.0)
            blue[..., 2] += amplitude * 9 * board  # luma weight 0.114: a step of 9 blue is one of luma
            tiles.append(blue)
    # Ordinary content: random pixels, and gradients.
    tiles += [rng.integers(0, 256, (size, size, 3)) for _ in range(5)]
    tiles.append(np.repeat(np.linspace(100, 104, size)[None, :, None], size, 0).repeat(3, 2))
    tiles.append(np.repeat(np.linspace(100, 108, size)[:, None, None], size, 1).repeat(3, 2))
    return np.clip(np.stack(tiles), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("size", [16, 30, 128])
def test_without_flat_keeps_exactly_the_tiles_whose_full_luma_std_reaches_the_minimum(size):
    rng = np.random.default_rng(size)
    pixels = adversarial_tiles(size, rng)
    expected = plain_rule(pixels)
    # The cases cover both sides of the rule, and tiles the sparse rows cannot clear but which are kept.
    sparse = luma(pixels[:, ::SPARSE_ROWS]).std(axis=(1, 2))
    assert expected.any() and not expected.all()
    assert (expected & (sparse < SURELY_TEXTURED_STD)).sum() >= 5
    for order in (np.arange(len(pixels)), rng.permutation(len(pixels))):
        boxes = [(int(k), 0, int(k) + size, size) for k in order]
        kept = without_flat(Tiles(pixels[order], boxes))
        assert [box[0] for box in kept.boxes] == [int(k) for k in order if expected[k]]
        np.testing.assert_array_equal(kept.pixels, pixels[order][expected[order]])


def test_without_flat_of_no_tile_and_of_all_kept_tiles():
    empty = Tiles(np.zeros((0, 16, 16, 3), np.uint8), [])
    assert without_flat(empty) is empty
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    kept = without_flat(Tiles(pixels, [(0, 0, 16, 16)] * 3))
    assert kept.boxes == [(0, 0, 16, 16)] * 3 and np.array_equal(kept.pixels, pixels)


def test_tiles_cut_on_read_are_those_cut_at_once():
    """`content_tiles` cuts tiles as scoring reads them; whatever is read first, they are exactly the tiles cutting
    every candidate and leaving out flat ones gives (`without_flat`), in their order."""
    import pickle

    from ccscore.images import DecodedImage
    from ccscore.tiling import CutOnRead

    size, rng = 32, np.random.default_rng(5)
    pixels = adversarial_tiles(size, rng)[:48]  # flat, near-flat and textured tiles side by side
    image = DecodedImage.from_array(np.concatenate([np.concatenate(list(row), axis=1)
                                                    for row in pixels.reshape(6, 8, size, size, 3)]))
    ranked = [(int(x) * size, int(y) * size, int(x + 1) * size, int(y + 1) * size)
              for y, x in (divmod(int(k), 8) for k in rng.permutation(48))]
    at_once = without_flat(Tiles(np.stack([image.crop(*box) for box in ranked]), ranked))
    assert 0 < len(at_once.boxes) < len(ranked)
    for reads in ([0], [1, 1], [2, 5], [len(ranked)]):
        tiles = CutOnRead(image, ranked, size)
        for n in reads:
            assert tiles.first_boxes(n) == at_once.boxes[:n]
            np.testing.assert_array_equal(tiles.first(n), at_once.pixels[:n])
            assert tiles.more_than(n) == (len(at_once.boxes) > n)
        assert len(tiles.cut_boxes()) <= max(reads) + 1  # nothing cut beyond what was asked (and one more)
        assert tiles.boxes == at_once.boxes and tiles._image is None  # all cut: the image let go
        np.testing.assert_array_equal(tiles.pixels, at_once.pixels)
        assert all(np.shares_memory(kept, tiles.pixels) for kept in tiles._kept)  # all cut: the tiles held once
    sent = pickle.loads(pickle.dumps(CutOnRead(image, ranked, size)))  # as a worker sends tiles: all of them
    assert type(sent) is Tiles and sent.boxes == at_once.boxes
    np.testing.assert_array_equal(sent.pixels, at_once.pixels)


def test_scoring_cuts_only_the_tiles_it_reads():
    """A clean image decided on its first two tiles, judged by the model and its gate alone (as halved tiles are),
    cuts three (the third says there are more), with the same result as its every tile cut first. (The decoder
    check, asked where P(lossy) >= 2%, reads every tile.)"""
    from pathlib import Path

    from ccscore import Scorer
    from ccscore.images import load_image
    from ccscore.tiling import make_tiles

    scorer = Scorer(device="cpu", intra_op_threads=1)
    path = Path(__file__).resolve().parents[1] / "examples" / "art-clean.png"
    decoded = load_image(path)
    lazy = make_tiles(decoded, scorer.info.tiling, scorer.info.tile_size, scorer.tiling_params, cut_on_read=True)
    eager = make_tiles(decoded, scorer.info.tiling, scorer.info.tile_size, scorer.tiling_params)
    assert eager._image is None  # cut at once, the image let go
    (by_lazy,), (by_eager,) = (scorer._score_together([(str(path), t, decoded.size)], checks=False)
                               for t in (lazy, eager))
    assert by_lazy.to_dict(True, True) == by_eager.to_dict(True, True) and by_lazy.label == "clean"
    assert len(by_lazy.tiles) == 2 < len(eager.boxes)
    assert len(lazy.cut_boxes()) == 3
    (checked,) = scorer.score_together([(str(path), make_tiles(decoded, scorer.info.tiling, scorer.info.tile_size,
                                                                 scorer.tiling_params, cut_on_read=True), decoded.size)])
    assert checked.to_dict(True, True) == scorer.score_together([(str(path), eager, decoded.size)])[0].to_dict(True, True)


def test_a_small_images_content_tiles_hold_its_pixels_and_a_larger_ones_do_not():
    """The blocks' read-back reads a small image whole (`Tiles.whole`); tiles cut on read keep them when pickled."""
    import pickle

    from ccscore.tiling import WHOLE_MAX_PIXELS, make_tiles

    rng = np.random.default_rng(1)
    small = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    for cut_on_read in (False, True):
        tiles = make_tiles(small, "content", 128, cut_on_read=cut_on_read)
        assert np.array_equal(tiles.whole, small)
        assert np.array_equal(pickle.loads(pickle.dumps(tiles)).whole, small)
    at_most = rng.integers(0, 256, (512, WHOLE_MAX_PIXELS // 512, 3), dtype=np.uint8)
    assert make_tiles(at_most, "content", 128).whole is not None
    large = rng.integers(0, 256, (512, WHOLE_MAX_PIXELS // 512 + 1, 3), dtype=np.uint8)
    assert make_tiles(large, "content", 128).whole is None
    assert make_tiles(small, "city96_fivecrop", 128).whole is None  # the read-back reads content tiles


def test_a_small_images_pixels_are_a_copy_of_the_callers_array():
    """A caller that reuses its frame buffer (scoring a video's frames one after another) must not change the pixels
    an image's tiles hold."""
    from ccscore.tiling import make_tiles

    frame = np.random.default_rng(2).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    tiles = make_tiles(frame, "content", 128, cut_on_read=True)
    kept = frame.copy()
    frame[:] = 0  # the next frame
    assert np.array_equal(tiles.whole, kept)
