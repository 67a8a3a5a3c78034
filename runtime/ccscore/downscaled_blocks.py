"""JPEG's 8x8 quantisation read back through a downscale (evidence "downscaled", `details.downscaled.blocks`).

A JPEG quantises each 8x8 block's DCT coefficients: at its own grid many of a textured block's coefficients are zero,
and the tiles of one image agree on where that grid lies (the fixed statistic the held-out evaluation measured: 96% of
JPEG tiles agree, 19-28% of clean ones). A downscale by s keeps the coefficients below s x the source's Nyquist
frequency and moves the grid to a period of 8s pixels, a fraction of a pixel. Resampled back by 1/s onto the source's
pixel grid, a tile's low-frequency coefficients are the source's again, nearly: at the grid's phase most of those the
codec zeroed are still near zero, and the windows of one image agree on that phase. Clean art resampled so has no
phase its windows agree on.

The factor is not known; the grid's period is, nearly, where the tiles' spectra peak (`resized.grid_peak`, in luma or
chroma: 8s, 4:2:0's 16 px chroma blocks showing there through their second harmonic). A period slightly off moves the
phase across the image (0.1% of 1000 px is one pixel), so the windows' phases are fitted with a drift each way (up to
DRIFT_PX over the image's extent) before they are counted: `back_agreement` gives how many agree on one phase so, of how
many read. A peak read on 128 px tiles may be off by half a frequency step (0.2-0.4%), which misaligns far windows by a
fraction of a pixel: some JPEGs are missed so. With the scorer's tiles as the regions, each gives one window, and a
small image few (a 300 px image, 2 to 4): there the whole image is read as one region, split into as many windows as
fit (`split`). Measured on the calibration set (eval-wild-cal) and its extra draws: see `Scorer._judge_blocks` and the
docs/evidence.md, evidence `downscaled`, blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from PIL import Image

from .quantisation import DCT8
from .tiling import Box, luma

BLOCK = 8
WINDOW = 128  # source pixels each way of a window whose 8x8 phase is read (16 x 16 blocks, as the fixed statistic's)
MIN_WINDOW = 96  # a window's side may shrink to this where a region is smaller (an image under a tile's side)
MIN_WINDOWS = 4  # windows read, for an agreement to count
SPLIT_MAX_WINDOWS = 8  # each way, of a region split into windows (`split`): the cost of a read bounded
MARGIN = 3  # region pixels left at each edge: Lanczos reads 3 each way, and a region's edge is clamped
# A window's best phase must lead the median phase's share by MIN_LEAD and beat every other phase: a smooth window is
# near zero at every phase alike (a slow 8-bit gradient's staircase leads by 0.005-0.007), a steeper staircase at a
# whole row or column of phases alike (tied), and the argmax would vote for the window's own origin, which the tiles'
# lattice lines up. A test of flatness, not of significance: flat noise leads by 0.01-0.03 and votes, though
# its votes scatter. Among 0.005, 0.01, 0.02 and 0.03 on the calibration set's images asked: up to 0.01 the same JPEG
# found, 0.02 lost one; with no such rule one more was found, only through such windows (85.0% against 84.2%); the
# tie rule changed none of the calibration set's JPEG downscaled, resized by 0.95, noisy or pixel art figures.
MIN_LEAD = 0.01
# A coefficient counts as quantised away where its magnitude (orthonormal DCT of 0-255 luma) is under this: the
# resize's 8-bit rounding leaves about 0.3 on a zero. Chosen among 0.5, 0.7, 1.0, 1.5, 2 and 3 on the calibration
# set's JPEG then downscaled at their true factor (1.0 and 1.5 best).
NEAR_ZERO = 1.0
# The drift a period slightly off leaves across the image, fitted each way: +-DRIFT_PX in half-pixel steps (0 found 4
# fewer of the calibration set's JPEG then downscaled at their true period; 3 and 6 the same at the peaks' periods).
DRIFT_PX = 6.0
DRIFT_STEP = 0.5
# Periods read: s 0.5-0.95 (a period of 4, just under, drew clean art upscaled x2 and pixel art: 8 of the
# calibration set's clean images agreed there), none within SAME_PERIOD of another
MIN_PERIOD, MAX_PERIOD = 4.05, 7.6
SAME_PERIOD = 0.01


def phase_shares(window: np.ndarray, side: int, kept: int) -> np.ndarray:
    """For each of the 64 phases (row, column) of an 8x8 grid over `window` (luma, side + 7 each way at least): the
    share of its blocks' DCT coefficients below `kept` each way (the DC left out) that are near zero."""
    from numpy.lib.stride_tricks import sliding_window_view

    basis = DCT8[:kept]
    blocks = side // BLOCK
    # the DCT of the block starting at every pixel (two sliding 1D transforms), then counted by where it starts,
    # modulo 8
    across = sliding_window_view(window[: side + BLOCK - 1, : side + BLOCK - 1], BLOCK, axis=1)[:, :side] @ basis.T
    down = np.einsum("km,ymxl->yxkl", basis, sliding_window_view(across, BLOCK, axis=0)[:side].transpose(0, 3, 1, 2))
    near = np.abs(down) < NEAR_ZERO
    counts = np.count_nonzero(near.reshape(side, side, -1), axis=2) - near[:, :, 0, 0]
    return counts.reshape(blocks, BLOCK, blocks, BLOCK).sum(axis=(0, 2)) / (blocks * blocks * (kept * kept - 1))


def back_windows(regions: Sequence[np.ndarray], boxes: Sequence[Box], period: float, split: bool = False
                 ) -> list[tuple[int, int, np.ndarray]]:
    """Each region (RGB pixels, at `boxes` in the image) resampled back by 1/s (s = period / 8, Lanczos) onto one
    integer grid of the source's pixels, as one window of up to WINDOW (+ 8) source pixels, or with `split` as a
    lattice of as many windows of MIN_WINDOW to WINDOW as fit (SPLIT_MAX_WINDOWS each way at most); of each window
    where one phase stands out, its origin (row, column, on that grid) and `phase_shares`. (A 128 px tile holds one
    window unsplit at every s the peaks give; split, 2 x 2 at periods up to about 4.5.)"""
    scale = period / BLOCK
    kept = int(max(2, min(BLOCK, np.floor(BLOCK * scale))))  # the coefficients a downscale by `scale` keeps
    read = []
    for region, (left, top, _, _) in zip(regions, boxes):
        height, width = region.shape[:2]
        row0, column0 = int(np.ceil((top + MARGIN) / scale)), int(np.ceil((left + MARGIN) / scale))
        row1, column1 = int((top + height - MARGIN) / scale), int((left + width - MARGIN) / scale)
        rows, columns = row1 - row0, column1 - column0
        across = [1, 1]
        if split:  # windows (and the 8 px each reads past its side) that fit each way
            across = [int(np.clip((extent - BLOCK) // (MIN_WINDOW + BLOCK), 1, SPLIT_MAX_WINDOWS))
                      for extent in (rows, columns)]
        cell_rows, cell_columns = rows // across[0], columns // across[1]
        side = min(WINDOW, BLOCK * ((min(cell_rows, cell_columns) - BLOCK) // BLOCK))
        if side < MIN_WINDOW:
            continue
        plane = Image.fromarray(luma(region).astype(np.float32), mode="F")
        box = (column0 * scale - left, row0 * scale - top, column1 * scale - left, row1 * scale - top)
        back = np.asarray(plane.resize((columns, rows), Image.LANCZOS, box=box), dtype=np.float64)
        for row in range(0, across[0] * cell_rows, cell_rows):
            for column in range(0, across[1] * cell_columns, cell_columns):
                shares = phase_shares(back[row:row + side + BLOCK, column:column + side + BLOCK], side, kept)
                ranked = np.sort(shares.ravel())
                # a window votes only where one phase stands out: a smooth one is near zero at every phase alike,
                # and a staircase at every phase of a row or column alike; the argmax, the first such phase, would
                # vote for the window's own origin, which the tiles' lattice lines up
                if ranked[-1] - np.median(ranked) >= MIN_LEAD and ranked[-1] > ranked[-2]:
                    read.append((row0 + row, column0 + column, shares))
    return read


@dataclass(frozen=True)
class BackAgreement:
    """Windows resampled back from a downscale by period / 8: how many agree on one 8x8 phase, of how many read."""

    period: float
    agreeing: int
    read: int

    def agrees(self, least_share: float, least_read: int = MIN_WINDOWS) -> bool:
        """Whether at least `least_share` of the windows agree, of enough read (`least_read`)."""
        return self.read >= least_read and self.agreeing >= least_share * self.read


def back_agreement(regions: Sequence[np.ndarray], boxes: Sequence[Box], size: tuple[int, int],
                   period: float, split: bool = False) -> BackAgreement:
    """`back_windows` of the regions of an image of `size` (width, height) (`split`: as many windows as fit); each
    window's best 8x8 phase; the most windows that agree on one phase once a drift of up to DRIFT_PX across the image
    is allowed each way."""
    scale = period / BLOCK
    phases = []
    for row, column, shares in back_windows(regions, boxes, period, split):
        best_row, best_column = np.unravel_index(int(np.argmax(shares)), shares.shape)
        phases.append((row + best_row, column + best_column))
    if not phases:
        return BackAgreement(period, 0, 0)
    at = np.array(phases, dtype=np.float64)
    drifts = np.arange(-DRIFT_PX, DRIFT_PX + 1e-9, DRIFT_STEP)
    fitted = []  # each axis's phases under each drift: [drifts, windows]
    for axis, extent in ((0, size[1] / scale), (1, size[0] / scale)):
        position = at[:, axis]
        fitted.append(np.round(position[None, :] * (1 - drifts[:, None] / extent)).astype(int) % BLOCK)
    codes = (fitted[0][:, None, :] * BLOCK + fitted[1][None, :, :]).reshape(-1, len(phases))
    agreeing = max(int(np.bincount(code, minlength=BLOCK * BLOCK).max()) for code in codes)
    return BackAgreement(period, agreeing, len(phases))


def candidate_periods(periods: Sequence[Optional[float]]) -> list[float]:
    """The periods to read back at, in the order given (the planes' peaks, strongest first), within
    MIN_PERIOD..MAX_PERIOD, none within SAME_PERIOD of another."""
    out: list[float] = []
    for period in periods:
        if period and MIN_PERIOD <= period <= MAX_PERIOD and all(abs(period / p - 1) > SAME_PERIOD for p in out):
            out.append(period)
    return out
