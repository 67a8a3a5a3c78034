"""JPEG damage downscaled after compression: the block grid's period under resampling (evidence "downscaled").

Downscaling a JPEG by s (0.5-0.95) blurs its 8x8 blocks into a grid of period 8s, a fraction of a pixel, which
no fixed 8x8 or 4x4 phase statistic (the model's grid evidence) can see. The blocks' edges still show where the
art is smooth: the mean |second difference| of smooth pixels, per column (row), peaks every 8s pixels. Summed
over the content tiles at their places in the image (one grid, so the sum is coherent), its spectrum peaks at
1/(8s) cycles per pixel along both axes, well above the spectrum's median.

Clean art rarely peaks there. Upscales do (interpolation repeats with the source pixels, every u pixels), but in
this band mostly at a harmonic of a stronger peak elsewhere, where a JPEG grid's strongest peak is its own
fundamental or one of its harmonics; nearest-neighbour pixel art repeats whole pixels, and its first differences
are mostly exact zeros. Measured on eval-wild-cal (the calibration set; `benchmarks/accuracy.py`): see
`Scorer.find_downscaled` and the README's "Damage resized after compression".
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Optional, Sequence

import numpy as np

from .tiling import Box

LUMA = np.array([0.299, 0.587, 0.114], np.float32)
FFT_LENGTH = 1024  # a frequency step of ~0.001 cycles per pixel (a 128 px tile resolves ~0.008)
FREQUENCIES = np.fft.rfftfreq(FFT_LENGTH)
# Periods 8s for s 0.51-0.95 (8s = 4.1-7.6 px): below, an upscale's source pixels (u ~ 4) repeat; above, too little
# of the grid survives, and clean art drawn on 8 px cells peaks at 8.
BAND = (FREQUENCIES >= 1 / 7.6) & (FREQUENCIES <= 1 / 4.1)
# Where a stronger peak is looked for, and the spectrum's median taken (0.5: single-pixel alternation, any art).
FULL = (FREQUENCIES >= 0.05) & (FREQUENCIES <= 0.48)
# A |second difference| counts where the first differences around it (two pixels each way) are all below this
# (0-255 luma): the art's own edges would drown the blocks' steps. Chosen among 2-8 on eval-wild-cal (4 and 5 best).
SMOOTH_BELOW = 4.0
# The full spectrum's strongest peak must be one of the first HARMONICS multiples of the band's peak (folded
# into 0-0.5), within HARMONIC_TOLERANCE cycles per pixel, or the band's peak is another grid's harmonic.
HARMONICS = 4
HARMONIC_TOLERANCE = 0.004
# Whole-pixel upscales (pixel art): first differences exactly zero, measured 0.81-0.96 of them; downscaled JPEG
# whose grid shows at most 0.78.
MAX_ZERO_DIFFERENCES = 0.8
MIN_TILE_SIDE = 32  # a tile's own pixels each way, to count (a profile shorter than this resolves no period)


@dataclass(frozen=True)
class GridPeak:
    """The strongest peak, within BAND, of the smooth pixels' profile spectrum (both axes: the weaker)."""

    strength: float  # the peak over the spectrum's median (each axis over its own; the weaker axis)
    period: float  # pixels: 8 x the downscale factor, if it is a JPEG's grid
    harmonic_of_stronger: bool  # the spectrum's strongest peak is not one of this peak's harmonics
    zero_differences: float  # share of first differences exactly zero (whole-pixel upscales)

    @property
    def scale(self) -> float:
        """The downscale factor that would have brought a JPEG's 8 px blocks to this period."""
        return self.period / 8.0

    def shows_grid(self, min_strength: float) -> bool:
        """Whether this is read as a JPEG's block grid, downscaled."""
        return (self.strength >= min_strength and not self.harmonic_of_stronger
                and self.zero_differences < MAX_ZERO_DIFFERENCES)


@lru_cache(maxsize=16)
def _window(length: int) -> np.ndarray:
    return np.hanning(length).astype(np.float32)


def _profiles(lumas: np.ndarray) -> tuple[np.ndarray, int]:
    """lumas [n, h, w] float32 -> (the smooth pixels' mean |second difference| per column, centres 1..w-2, mean
    removed, [n, w - 2]; how many first differences are exactly zero)."""
    first = np.diff(lumas, axis=2)
    zeros = int(np.count_nonzero(first == 0))
    second = np.abs(first[:, :, 1:] - first[:, :, :-1])
    first = np.abs(first)
    around = np.maximum(first[:, :, :-1], first[:, :, 1:])  # the two differences touching each centre
    wider = around.copy()  # and their neighbours: two pixels each way
    np.maximum(wider[:, :, 1:], around[:, :, :-1], out=wider[:, :, 1:])
    np.maximum(wider[:, :, :-1], around[:, :, 1:], out=wider[:, :, :-1])
    profiles = np.where(wider < SMOOTH_BELOW, second, 0.0).mean(axis=1)
    return profiles - profiles.mean(axis=1, keepdims=True), zeros


def _spectrum(groups: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, int]:
    """(the tiles' profile spectra summed with each tile's phase at its place in the image, over its median in
    FULL; zero first differences) for groups of equally sized tiles: (lumas [n, h, w], left edges [n])."""
    total = np.zeros(len(FREQUENCIES), complex)
    zeros = 0
    for lumas, starts in groups:
        profiles, z = _profiles(lumas)
        zeros += z
        spectra = np.fft.rfft(profiles * _window(profiles.shape[1]), FFT_LENGTH, axis=1)
        total += (spectra * np.exp(-2j * np.pi * np.outer(starts + 1, FREQUENCIES))).sum(axis=0)
    magnitude = np.abs(total)
    return magnitude / (np.median(magnitude[FULL]) + 1e-9), zeros


def grid_peak(tiles: Sequence[np.ndarray], boxes: Sequence[Box]) -> Optional[GridPeak]:
    """The peak over the tiles' own pixels (uint8 [h, w, 3] each, at `boxes` in the image); None where no tile is
    MIN_TILE_SIDE each way."""
    by_shape: dict[tuple[int, int], list[tuple[np.ndarray, Box]]] = {}
    for tile, box in zip(tiles, boxes):
        if min(tile.shape[0], tile.shape[1]) >= MIN_TILE_SIDE:
            by_shape.setdefault(tile.shape[:2], []).append((tile, box))
    if not by_shape:
        return None
    rows, columns = [], []
    for group in by_shape.values():
        lumas = np.stack([tile for tile, _ in group]).astype(np.float32) @ LUMA
        rows.append((lumas, np.array([box[0] for _, box in group])))
        columns.append((lumas.transpose(0, 2, 1), np.array([box[1] for _, box in group])))
    across, zeros_across = _spectrum(rows)
    down, zeros_down = _spectrum(columns)
    joint = np.minimum(across, down)
    k = int(np.argmax(np.where(BAND, joint, -1.0)))
    peak = float(FREQUENCIES[k])
    strongest = float(FREQUENCIES[int(np.argmax(np.where(FULL, joint, -1.0)))])
    multiples = np.abs((np.arange(1, HARMONICS + 1) * peak + 0.5) % 1.0 - 0.5)  # folded into 0-0.5
    differences = sum(l.shape[0] * (l.shape[1] * (l.shape[2] - 1) + l.shape[2] * (l.shape[1] - 1))
                      for l, _ in rows)
    return GridPeak(float(joint[k]), 1.0 / peak,
                    bool(np.min(np.abs(multiples - strongest)) > HARMONIC_TOLERANCE),
                    (zeros_across + zeros_down) / differences)
