"""The look of JPEG damage resized after compression, learned: a small convolutional network over an image's most
textured 64 px cells, for the JPEGs downscaled since whose block grid no rule and no judge of `Scorer.find_downscaled`
finds (the grid's lattice is gone, its ringing and faint steps are not). Its input is each cell's second differences of
Y, Cb and Cr along x and y, log-compressed (sign(v) log(1 + |v|)), so a JPEG's faint steps weigh beside the art's
edges (raw RGB taught it nothing). Six 3x3 convolutions (batch norm folded in, ReLU), a global mean and one logit per
cell; the image's score is the sigmoid of its cells' mean logit (the first few cells, or all where those lean lossy:
`ResizedAppearance.pooled`). Weights are data (`resized_appearance.json`, trained
for the bundled model by export/ccscore_export/resized_appearance.py), run here in numpy."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .errors import ModelError, one_line
from .resized_judge import fitted_for_of, sigmoid
from .tiling import TEXTURE_BAND

BUNDLED_APPEARANCE = Path(__file__).with_name("resized_appearance.json")
CELL = 64  # px, a cell's side
# The most textured cells of the tiles read (at most MAX_CELLS, each with at least MIN_CELL_TEXTURE of its neighbour
# steps in tiling.TEXTURE_BAND: flatter cells, a fill and a few outlines, show too little to carry damage's look).
# The FIRST_CELLS most textured are scored first, and the rest only where those score MORE_CELLS_FROM or more: more
# cells are surer evidence (session 25's network on the calibration set, the same clean budget: JPEG then downscaled
# 112 -> 115 of 120 found with up to 32 cells against 6, grey art 112 -> 115, line art 106 -> 109), and the first
# cells of nearly all clean art score far below (about a tenth of the images asked read more), so the cost stays
# about 6 cells' an image.
MAX_CELLS = 32
FIRST_CELLS = 6
MORE_CELLS_FROM = 0.3
# Before the FIRST_CELLS, the PROBE_CELLS most textured alone: where they score under PROBE_BELOW, that is the image's
# score (the judge is asked from JUDGE_MIN_APPEARANCE, 20 times higher). Most clean art stops there, at a third of the
# cost (session 27: on the speed set 82 of the 107 images asked, 328 of 638 cells not run). Of the calibration set's
# 6,837 images with cells, one (clean) scored 0.02 or more on the FIRST_CELLS and stops under it, none of its seed-61
# draw's 1,509; none of the network's flags changes on either.
PROBE_CELLS = 2
PROBE_BELOW = 0.001
MIN_CELL_TEXTURE = 0.05
# A small image whose tiles give SMALL_MAX_CELLS cells or fewer (a 150-250 px sprite or texture: 1-4) is also scored on
# overlapping cells of all its pixels (`Tiles.whole`, images of tiling.WHOLE_MAX_PIXELS at most; a cell every
# WHOLE_CELL_STRIDE px each way: 9-36 of them there, up to 225 windows at 512 x 512, the MAX_CELLS most textured
# scored), and the higher of the two scores is its own (session 27). The whole's score alone lost more than it found
# (the calibration set: JPEG then downscaled 2 and grey art 3 fewer of 120). Since session 30 the export's threshold is
# chosen on these scores too (`ResizedAppearance.score_cells`; before, on the tiles' cells alone).
SMALL_MAX_CELLS = 8
WHOLE_CELL_STRIDE = 32
# YCbCr as JPEG converts (JFIF, full range), without the offsets: second differences drop them.
YCBCR = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], np.float32)


def cell_textures(tile: np.ndarray) -> np.ndarray:
    """`tiling.window_texture` of each whole CELL px cell of a tile [H, W, 3] on a CELL grid from its corner, all at
    once (float64 [H // CELL, W // CELL], the cells row by row): the same shares, at ~2.5x less cost an image than
    cell by cell."""
    rows, cols = tile.shape[0] // CELL, tile.shape[1] // CELL
    green = tile[: rows * CELL, : cols * CELL, 1].astype(np.int16).reshape(rows, CELL, cols, CELL)
    low, high = TEXTURE_BAND
    in_band = [(steps > low) & (steps < high)
               for steps in (np.abs(np.diff(green, axis=3)), np.abs(np.diff(green, axis=1)))]
    counts = sum(band.sum(axis=(1, 3), dtype=np.int64) for band in in_band)
    return counts / float(2 * CELL * (CELL - 1))


def textured_cells(tiles: Sequence[np.ndarray], max_cells: int = MAX_CELLS) -> np.ndarray:
    """The most textured CELL px cells (uint8 [N, CELL, CELL, 3], N <= max_cells) cut on a CELL grid of the tiles'
    own pixels (`Tiles.own`; a tile smaller than a cell gives none); those under MIN_CELL_TEXTURE left out."""
    cells, textures = [], []
    for tile in tiles:
        shares = cell_textures(tile)
        for row, col in zip(*np.nonzero(shares >= MIN_CELL_TEXTURE)):
            cells.append(tile[row * CELL:(row + 1) * CELL, col * CELL:(col + 1) * CELL])
            textures.append(shares[row, col])
    return _most_textured(cells, textures, max_cells)


def overlapping_cells(rgb: np.ndarray, max_cells: int = MAX_CELLS) -> np.ndarray:
    """The most textured CELL px cells (uint8 [N, CELL, CELL, 3], N <= max_cells) of an image's pixels [H, W, 3], one
    every WHOLE_CELL_STRIDE px each way from its corner; those under MIN_CELL_TEXTURE left out. Ties in texture keep
    the cells' order row by row."""
    found = []  # (top, left, texture): each offset grid's cells, put in row order below
    for dy in range(0, CELL, WHOLE_CELL_STRIDE):
        for dx in range(0, CELL, WHOLE_CELL_STRIDE):
            shares = cell_textures(rgb[dy:, dx:])
            for row, col in zip(*np.nonzero(shares >= MIN_CELL_TEXTURE)):
                found.append((dy + row * CELL, dx + col * CELL, shares[row, col]))
    found.sort(key=lambda cell: cell[:2])
    return _most_textured([rgb[top:top + CELL, left:left + CELL] for top, left, _ in found],
                          [texture for _, _, texture in found], max_cells)


def whole_cells_scored(cells: np.ndarray, whole: Optional[np.ndarray]) -> np.ndarray:
    """The cells of an image's whole pixels (`Tiles.whole`) its score reads beside its tiles' `cells`: its
    `overlapping_cells` where those are SMALL_MAX_CELLS or fewer and the pixels are kept; else none."""
    if len(cells) <= SMALL_MAX_CELLS and whole is not None:
        return overlapping_cells(whole)
    return np.zeros((0, CELL, CELL, 3), np.uint8)


def _most_textured(cells: list[np.ndarray], textures: list[float], max_cells: int) -> np.ndarray:
    """The `max_cells` cells of highest texture (ties in the order given), stacked: uint8 [N, CELL, CELL, 3]."""
    if not cells:
        return np.zeros((0, CELL, CELL, 3), np.uint8)
    order = np.argsort(-np.array(textures), kind="stable")[:max_cells]
    return np.stack([cells[k] for k in order])


def appearance_input(cells: np.ndarray) -> np.ndarray:
    """The network's input of cells (uint8 [N, H, W, 3]), channels first: float32 [6, N, H - 2, W - 2], the second
    differences of Y, Cb and Cr along x then y (channels Y_x, Y_y, Cb_x, Cb_y, Cr_x, Cr_y), each sign(v) log(1 + |v|)
    (log, not log1p: numpy's float32 log is vectorised, log1p 5x slower; they differ by under 1e-6 here)."""
    planes = np.tensordot(YCBCR, cells.astype(np.float32), axes=([1], [3]))  # [3, N, H, W]
    along_x = planes[:, :, 1:-1, 2:] - 2 * planes[:, :, 1:-1, 1:-1] + planes[:, :, 1:-1, :-2]
    along_y = planes[:, :, 2:, 1:-1] - 2 * planes[:, :, 1:-1, 1:-1] + planes[:, :, :-2, 1:-1]
    both = np.stack([along_x, along_y], axis=1).reshape(6, *along_x.shape[1:])
    return np.copysign(np.log(np.abs(both) + np.float32(1.0)), both)


def conv3x3(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, stride: int) -> np.ndarray:
    """A valid 3x3 convolution of x [C, N, H, W] (channels first) by weight [O, C, 3, 3] (+ bias [O]) at `stride`:
    [O, N, H', W']. The nine shifted views stacked once, then one matrix product (channels first, no transposes:
    1.5x faster than gathering them cell by cell)."""
    channels, n, height, width = x.shape
    rows, cols = (height - 3) // stride + 1, (width - 3) // stride + 1
    views = [x[:, :, dy:dy + stride * (rows - 1) + 1:stride, dx:dx + stride * (cols - 1) + 1:stride]
             for dy in range(3) for dx in range(3)]
    gathered = np.stack(views).reshape(9 * channels, n * rows * cols)
    out = weight.transpose(0, 2, 3, 1).reshape(len(weight), 9 * channels) @ gathered + bias[:, None]
    return out.reshape(len(weight), n, rows, cols)


@dataclass(frozen=True, eq=False)
class ResizedAppearance:
    convs: tuple[tuple[np.ndarray, np.ndarray, int], ...]  # (weight [O, C, 3, 3], bias [O], stride), in order
    out_weight: np.ndarray  # [C_last]
    out_bias: float
    threshold: float  # a score over this flags
    fitted_for: tuple[str, str, str] = ("", "", "")  # the model (name, version, file SHA-256) whose verdicts it follows

    def __eq__(self, other: object) -> bool:
        """By value (Scorer settings holding it are compared: `ScorerSettings`)."""
        if not isinstance(other, ResizedAppearance):
            return NotImplemented
        return (len(self.convs) == len(other.convs)
                and all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
                        for a, b in zip(self.convs, other.convs))
                and np.array_equal(self.out_weight, other.out_weight)
                and (self.out_bias, self.threshold, self.fitted_for)
                == (other.out_bias, other.threshold, other.fitted_for))

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def from_spec(cls, spec: dict) -> "ResizedAppearance":
        """From the trained JSON's fields; ValueError where shapes or values do not fit together."""
        convs, channels, side = [], 6, CELL - 2  # the input's side: second differences lose a pixel each edge
        for layer in spec["convs"]:
            weight, bias = np.asarray(layer["weight"], np.float32), np.asarray(layer["bias"], np.float32)
            stride = layer["stride"]
            if weight.ndim != 4 or weight.shape[1:] != (channels, 3, 3) or bias.shape != weight.shape[:1]:
                raise ValueError(f"convolution {len(convs) + 1}: weight {weight.shape}, bias {bias.shape} where "
                                 f"{channels} channels come in")
            if type(stride) is not int or stride not in (1, 2):
                raise ValueError(f"convolution {len(convs) + 1}: stride {stride!r}")
            side = (side - 3) // stride + 1
            if side < 1:
                raise ValueError(f"convolution {len(convs) + 1} leaves nothing of a {CELL} px cell")
            convs.append((weight, bias, stride))
            channels = weight.shape[0]
        out = np.asarray(spec["out"]["weight"], np.float32)
        if not convs or out.shape != (channels,):
            raise ValueError(f"output weight {out.shape} where the last convolution gives {channels} channels")
        if not 0.0 <= float(spec["threshold"]) <= 1.0:
            raise ValueError(f"threshold {spec['threshold']!r} is no probability")
        values = np.concatenate([*(np.concatenate([w.ravel(), b]) for w, b, _ in convs), out,
                                 [spec["out"]["bias"], spec["threshold"]]])
        if not np.all(np.isfinite(values)):
            raise ValueError("values that are not finite")
        return cls(tuple(convs), out, float(spec["out"]["bias"]), float(spec["threshold"]), fitted_for_of(spec))

    @classmethod
    def bundled(cls) -> "ResizedAppearance":
        """The network shipped beside the runtime; ModelError (one line) where it is missing or broken."""
        try:
            return cls.from_spec(json.loads(BUNDLED_APPEARANCE.read_text()))
        except Exception as exc:  # any shape of broken file: one line
            raise ModelError(f"{BUNDLED_APPEARANCE}: unusable resized-damage appearance: {one_line(exc)}") from None

    def logits(self, cells: np.ndarray) -> np.ndarray:
        """One logit per cell (uint8 [N, H, W, 3], H and W large enough for the convolutions)."""
        x = appearance_input(cells)
        for weight, bias, stride in self.convs:
            x = np.maximum(conv3x3(x, weight, bias, stride), 0.0)
        return self.out_weight @ x.mean(axis=(2, 3)) + self.out_bias

    @staticmethod
    def pooled(logits: np.ndarray) -> float:
        """An image's score from its cells' logits (most textured first): the sigmoid of the first PROBE_CELLS' mean
        logit where that is under PROBE_BELOW, else of the first FIRST_CELLS', or of all of theirs where that
        reaches MORE_CELLS_FROM."""
        if len(logits) > PROBE_CELLS:
            probe = sigmoid(float(np.mean(logits[:PROBE_CELLS])))
            if probe < PROBE_BELOW:
                return probe
        score = sigmoid(float(np.mean(logits[:FIRST_CELLS])))
        return sigmoid(float(np.mean(logits))) if score >= MORE_CELLS_FROM else score

    def score(self, cells: np.ndarray) -> Optional[float]:
        """`pooled` of all the cells' logits (`textured_cells`' order), each stage's cells run only where `pooled`
        reads them (past PROBE_CELLS, past FIRST_CELLS); None without cells."""
        if not len(cells):
            return None
        logits = self.logits(cells[:PROBE_CELLS])
        if len(cells) > PROBE_CELLS and sigmoid(float(np.mean(logits))) >= PROBE_BELOW:
            logits = np.concatenate([logits, self.logits(cells[PROBE_CELLS:FIRST_CELLS])])
            if len(cells) > FIRST_CELLS and sigmoid(float(np.mean(logits))) >= MORE_CELLS_FROM:
                logits = np.concatenate([logits, self.logits(cells[FIRST_CELLS:])])
        return self.pooled(logits)

    def score_image(self, own: Sequence[np.ndarray], whole: Optional[np.ndarray]) -> Optional[float]:
        """An image's score: `score` of its tiles' cells (`textured_cells` of their own pixels), or, where those are
        SMALL_MAX_CELLS or fewer and its whole pixels are kept (`Tiles.whole`), the higher of that and the score of
        its `overlapping_cells`; None without cells."""
        cells = textured_cells(own)
        return self.score_cells(cells, whole_cells_scored(cells, whole))

    def score_cells(self, cells: np.ndarray, whole_cells: Optional[np.ndarray]) -> Optional[float]:
        """`score_image` of an image's tiles' cells and its whole-pixel cells (`whole_cells_scored`; None or empty:
        none), as the export's calibration scores its rows too."""
        score = self.score(cells)
        whole_score = self.score(whole_cells) if whole_cells is not None else None
        if whole_score is not None and (score is None or whole_score > score):
            return whole_score
        return score

    def flags(self, score: Optional[float]) -> bool:
        return score is not None and score > self.threshold
