"""WebP (lossy VP8) quality from the decoded pixels: the quantiser steps its 4x4 luma blocks still sit on.

A VP8 decoder rebuilds each 4x4 luma block as a prediction plus the inverse transform of the quantised residual
(each level times the macroblock segment's AC step, libwebp's kAcTable[quantiser]). The predictions of most
blocks (DC, vertical, horizontal, TrueMotion, whole-macroblock or per block) are sums of a row and a column
term, so the transform coefficients with both a vertical and a horizontal frequency are the residual's alone:
on the image's 4x4 grid (from its origin) they sit at multiples of the step, give or take the loop filter and
the rounding of the RGB output (luma survives the colour conversion up to rounding and clipping).

The steps shown (`lattice_contrast`: how much more of the coefficients' mass lies on a step's multiples than
half-way between them) give the quantisers, libwebp's quality scale (QualityToCompression) turns those into a
quality. Spatial noise shaping (`sns`, 50 in Pillow and cwebp's default) spreads up to four segments around the
quality's quantiser, textured macroblocks coarser, flat ones finer; the textured ones are those the steps are
read on, so the quality is a fit (`QUALITY_FIT`, piecewise linear in the steps' mean quality) of what the steps
show: made by `python -m ccscore_export.fit_webp_quality` on WebP files it encodes from training art (Pillow and
cwebp's presets, colour and grey), never on an evaluation set.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Sequence

import numpy as np

from .tiling import luma

MACROBLOCK = 16
BLOCK = 4

# libwebp's kAcTable: the AC dequantisation step of each quantiser index (0-127).
AC_STEPS = np.array([
    4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33,
    34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 60, 62, 64, 66,
    68, 70, 72, 74, 76, 78, 80, 82, 84, 86, 88, 90, 92, 94, 96, 98, 100, 102, 104, 106, 108, 110, 112, 114, 116, 119,
    122, 125, 128, 131, 134, 137, 140, 143, 146, 149, 152, 155, 158, 161, 164, 167, 170, 173, 177, 181, 185, 189, 193,
    197, 201, 205, 209, 213, 217, 221, 225, 229, 234, 239, 245, 249, 254, 259, 264, 269, 274, 279, 284,
], np.float32)  # fmt: skip
MAX_QUANTISER = 127
# Quantisers read: up to 89 (step 112), past the coarsest segment of quality 30 with cwebp's strongest shaping.
READ_QUANTISERS = np.arange(90)

# VP8's inverse transform (libwebp TransformOne, without its rounding) is pixels = B @ levels @ B.T / 8 with B's
# columns orthogonal, of norm 2: levels = B.T @ pixels @ B / 2. Columns 1-3: the AC frequencies.
_K1, _K2 = 1 + 20091 / 65536, 35468 / 65536
VP8_BASIS = np.array([[1, _K1, 1, _K2], [1, _K2, -1, -_K1], [1, -_K2, -1, _K1], [1, -_K1, 1, -_K2]], np.float32)
AC_BASIS = VP8_BASIS[:, 1:]
# VP8 stores limited-range luma: 16 + 219/255 of BT.601 luma.
VP8_LUMA_SCALE = np.float32(219 / 255)

# The lattice contrast: coefficient magnitudes binned this finely, up to 4 of the coarsest step read; mass within
# CONTRAST_WIDTH of a step (in steps) of a non-zero multiple is "on", within it of a half-way point "off".
BIN = 0.25
BIN_EDGES = np.arange(0, 4 * AC_STEPS[READ_QUANTISERS[-1]] + BIN, BIN, dtype=np.float32)
CONTRAST_WIDTH = 0.2
# A step shows where its contrast is a local maximum of at least PEAK_CONTRAST (clean art's coefficients, and a
# WebP's read off its grid, stay below 0.05) and at least half the strongest's; at most four (VP8's segments).
PEAK_CONTRAST = 0.08
PEAK_SHARE = 0.5
MAX_SEGMENTS = 4
# A macroblock is read at the shown step whose multiples hold the most more of its coefficients than the
# half-way points do, by at least this many (fewer: too flat to tell).
MACROBLOCK_MARGIN = 2


def on_and_off_step(ratio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Of magnitudes in units of a step (`ratio`): which lie within CONTRAST_WIDTH of a non-zero multiple ("on"),
    which of a half-way point ("off")."""
    beyond_zero = ratio > 0.5
    frac = np.abs(ratio - np.rint(ratio))
    return (frac < CONTRAST_WIDTH) & beyond_zero, (np.abs(frac - 0.5) < CONTRAST_WIDTH) & beyond_zero


def _lattice_masks() -> tuple[np.ndarray, np.ndarray]:
    centres = (BIN_EDGES[:-1] + BIN_EDGES[1:]) / 2
    on, off = on_and_off_step(centres[None, :] / AC_STEPS[READ_QUANTISERS][:, None])
    return on.astype(np.float32), off.astype(np.float32)


ON_STEP, OFF_STEP = _lattice_masks()  # [quantisers read, bins]


def quality_of_quantiser(quantiser: float) -> float:
    """libwebp's quality -> quantiser (VP8SetSegmentParams: 127 * (1 - QualityToCompression(quality))) inverted;
    fractional quantisers welcome (a mean over segments)."""
    compression = min(max(1.0 - quantiser / MAX_QUANTISER, 0.0), 1.0)
    linear = compression**3
    return 100.0 * (linear * 1.5 if linear < 0.5 else (linear + 1.0) / 2.0)


def macroblock_coefficients(tiles: Sequence[np.ndarray], offsets: Sequence[tuple[int, int]]) -> np.ndarray:
    """[macroblocks, 144]: per whole 16x16 macroblock of the RGB tiles on their grids (`offsets`: row, column of the
    first macroblock in each tile), the |levels| (in AC step units of 1) of the 9 frequencies with both a vertical
    and a horizontal part of each of its 16 4x4 blocks."""
    parts = []
    for tile, (row, col) in zip(tiles, offsets):
        rows, cols = (tile.shape[0] - row) // MACROBLOCK, (tile.shape[1] - col) // MACROBLOCK
        if rows <= 0 or cols <= 0:
            continue
        y = luma(tile[row : row + rows * MACROBLOCK, col : col + cols * MACROBLOCK]) * VP8_LUMA_SCALE
        # (macroblock row, block row, pixel row, macroblock column, block column, pixel column) -> blocks last
        blocks = y.reshape(rows, 4, BLOCK, cols, 4, BLOCK).transpose(0, 3, 1, 4, 2, 5)
        levels = AC_BASIS.T @ blocks @ AC_BASIS / 2
        parts.append(np.abs(levels).reshape(rows * cols, 144))
    return np.concatenate(parts) if parts else np.zeros((0, 144), np.float32)


def lattice_contrast(magnitudes: np.ndarray) -> np.ndarray:
    """Per quantiser read: (mass on the step's non-zero multiples - mass half-way between) / both, of |levels|."""
    counts = np.histogram(magnitudes, BIN_EDGES)[0].astype(np.float32)
    on, off = ON_STEP @ counts, OFF_STEP @ counts
    return (on - off) / np.maximum(on + off, 1.0)


def shown_quantisers(contrast: np.ndarray) -> list[int]:
    """The quantisers whose steps show (see PEAK_CONTRAST), strongest first."""
    left = np.concatenate([[-np.inf], contrast[:-1]])
    right = np.concatenate([contrast[1:], [-np.inf]])
    peaks = np.flatnonzero((contrast >= PEAK_CONTRAST) & (contrast >= left) & (contrast > right))
    peaks = peaks[np.argsort(-contrast[peaks], kind="stable")][:MAX_SEGMENTS]
    return [int(READ_QUANTISERS[k]) for k in peaks if contrast[k] >= PEAK_SHARE * contrast[peaks[0]]]


def macroblock_counts(coefficients: np.ndarray, quantisers: list[int]) -> np.ndarray:
    """How many macroblocks read at each of `quantisers` (see MACROBLOCK_MARGIN)."""
    margins = []
    for q in quantisers:
        on, off = on_and_off_step(coefficients / AC_STEPS[q])
        margins.append(on.sum(axis=1) - off.sum(axis=1))
    margins = np.array(margins)
    best = np.argmax(margins, axis=0)
    decided = margins[best, np.arange(margins.shape[1])] >= MACROBLOCK_MARGIN
    return np.bincount(best[decided], minlength=len(quantisers))


@dataclass(frozen=True)
class WebPQualityEstimate:
    """A WebP's quality from its 4x4 grid: `quantisers` shown (strongest first) and the macroblocks read at each
    (`macroblocks`, of `macroblocks_seen`), `contrast` of the strongest, `quality` (QUALITY_FIT of those)."""

    quality: float
    quantisers: tuple[int, ...]
    macroblocks: tuple[int, ...]
    macroblocks_seen: int
    contrast: float

    @property
    def features(self) -> np.ndarray:
        """What QUALITY_FIT weighs (with `fit_terms`): the quality of the macroblocks' mean quantiser (in libwebp's
        compression scale, where segments spread evenly), the strongest contrast, the share of macroblocks read,
        the quality span of the segments shown, two products, the quality of the quantiser most macroblocks read
        at (of a tie, the strongest shown) and their share of those read. `read_lattice` reads at least one
        macroblock: no term divides by zero."""
        counts = np.array(self.macroblocks, np.float64)
        compression = np.exp(np.average(np.log(1.0 - np.array(self.quantisers) / MAX_QUANTISER), weights=counts))
        mean_quality = quality_of_quantiser(MAX_QUANTISER * (1.0 - compression))
        share = float(counts.sum()) / self.macroblocks_seen
        span = quality_of_quantiser(min(self.quantisers)) - quality_of_quantiser(max(self.quantisers))
        dominant = int(np.argmax(counts))
        return np.array([mean_quality, self.contrast, mean_quality * self.contrast, share, mean_quality * share, span,
                         quality_of_quantiser(self.quantisers[dominant]), counts[dominant] / counts.sum()])


def fit_terms(features: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """WebPQualityEstimate.features (one row or several) and the mean quality's excess over each of `knots`: what
    QUALITY_FIT is a line in, so piecewise linear in the mean quality (the steps shown and the quality part more
    towards the ends of the scale)."""
    features = np.asarray(features, np.float64)
    return np.concatenate([features, np.maximum(features[..., :1] - knots, 0.0)], axis=-1)


def fitted_quality(features: np.ndarray, knots: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The quality of `features` (one row or several) by a fit: `knots` for `fit_terms`, `weights` its terms'
    weights then a constant; clipped to libwebp's 0-100."""
    return np.clip(fit_terms(features, knots) @ weights[:-1] + weights[-1], 0.0, 100.0)


# The knots of fit_terms and the weights of its terms then a constant, both from `python -m
# ccscore_export.fit_webp_quality --samples 6000` (5,712 samples showed a step; 5-fold MAE 4.86: Pillow 4.3, cwebp's
# presets 3.3-8.7, grey 3.3-8.0; cwebp's icon and text, sns off, read 6-8 high, photo and picture 2-3 low).
QUALITY_KNOTS = np.array([37.49, 53.38, 76.67])
QUALITY_FIT = np.array([0.59968, -6.88879, 0.0355827, -22.8865, 0.232065, -0.0627971, 0.26801, 0.362899, -0.015309,
                        -0.294932, 0.212998, 23.0393])


def read_lattice(tiles: Sequence[np.ndarray], offsets: Sequence[tuple[int, int]]) -> Optional[WebPQualityEstimate]:
    """What the tiles' 4x4 grids show (see the module's doc), its `quality` not yet fitted (NaN); None where no step
    shows on some macroblock (a WebP read off its grid, shifted or resized since, or too flat)."""
    coefficients = macroblock_coefficients(tiles, offsets)
    if not len(coefficients):
        return None
    contrast = lattice_contrast(coefficients.ravel())
    quantisers = shown_quantisers(contrast)
    if not quantisers:
        return None
    counts = macroblock_counts(coefficients, quantisers)
    if not counts.sum():  # a few coefficients that fit some step, no macroblock that shows it: too flat to tell
        return None
    return WebPQualityEstimate(float("nan"), tuple(quantisers), tuple(int(n) for n in counts), len(coefficients),
                               float(contrast[quantisers[0]]))


def estimate_webp_quality(tiles: Sequence[np.ndarray], offsets: Sequence[tuple[int, int]]) -> Optional[WebPQualityEstimate]:
    """The quality of a WebP from RGB uint8 tiles (`offsets`: where the image's 16x16 macroblock grid starts in
    each, row and column), or None where its grid shows no step."""
    read = read_lattice(tiles, offsets)
    if read is None:
        return None
    return replace(read, quality=float(fitted_quality(read.features, QUALITY_KNOTS, QUALITY_FIT)))
