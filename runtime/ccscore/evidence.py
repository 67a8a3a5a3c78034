"""Image-level evidence: how many tiles could show a codec's trace, and do they agree on one block grid?

A JPEG or WebP image has ONE block grid: every textured tile's best grid phase, expressed in image
coordinates, points at the same offset. Resampling, upscaling, screentone and painted texture leave near-zero
coefficients too, but at phases that differ from tile to tile. Averaging per-tile probabilities throws that
difference away; this module keeps it.

The model's `phases` output gives, per tile and per grid period n (8 for JPEG, 4 for WebP's transform), the
near-zero share of every phase p = r * n + s (blocks starting at tile row r, column s, modulo n). A tile whose
coefficients are nearly all zero at every phase (flat) or whose phases are tied carries no grid evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional, Sequence

import numpy as np

from .tiling import Box

# A tile votes on the grid only when its best phase stands out from its mean phase by this much (near-zero
# share, 0-1). Flat tiles score ~1 at every phase and tie; noise and texture score low everywhere.
MIN_PHASE_CONTRAST = 0.002
# Share of coefficients that are not near zero, averaged over phases, below which a tile is flat: nothing a
# codec could mark. (1 - mean phase score; measured flat and blank tiles sit below 0.01.)
MIN_TILE_DETAIL = 0.02


@dataclass(frozen=True)
class GridVote:
    """Agreement of an image's tile quadrants on one block grid of period `period`."""

    period: int
    offset: tuple[int, int] | None  # (row, column) of the modal grid in image pixels, modulo period
    agreeing: int  # voting quadrants whose best phase is the modal one
    voting: int  # quadrants of the image's own pixels with grid evidence

    @property
    def agreement(self) -> float:
        """The share of the other voting quadrants that point where the modal one does. The modal vote agrees
        with itself whatever the image: counting it would lift few random votes (2 of 4) to a grid."""
        return (self.agreeing - 1) / (self.voting - 1) if self.voting > 1 else 0.0

    @property
    def checkable(self) -> bool:
        """Whether enough quadrants voted (MIN_VOTES) for their agreement to be worth checking."""
        return self.voting >= MIN_VOTES


# Fewer voting quadrants than this leave no agreement worth checking.
MIN_VOTES = 3


@dataclass(frozen=True)
class ImageEvidence:
    detailed_tiles: int  # scored tiles with any detail a codec must quantise
    grids: dict[int, GridVote]  # by period
    # Times the image was halved before damage showed (Scorer.halve_upscaled): 1 where it was upscaled x2 after
    # compression, 2 where x4; the grids are then the halved image's. `halved_from`: the image pixel (x, y) where
    # the halving's blocks start.
    halvings: int = 0
    halved_from: tuple[int, int] = (0, 0)
    # The period (px) of a JPEG's block grid found downscaled (Scorer.find_downscaled): 8 x the downscale factor;
    # the plane it was found in: "luma", or "chroma" (Cb or Cr, where luma's grid was too faint).
    downscaled_period: Optional[float] = None
    downscaled_plane: Optional[Literal["luma", "chroma"]] = None
    # Where the resized-damage judge found it (no single rule did): its probability; the period is the strongest
    # plane's peak's.
    downscaled_judged: Optional[float] = None
    # Where the resized-damage appearance network found it (resized_appearance: no grid read did): its score. Both
    # this and downscaled_judged where the two together renamed a WebP or AVIF verdict nothing proved.
    downscaled_appearance: Optional[float] = None
    # Where the judge leant that way and the blocks' quantisation, read back through the downscale, showed it
    # (downscaled_blocks.back_agreement): the windows that agree on one 8x8 phase, and the windows read; and what
    # they were read on: "tiles" (the scored tiles, a window each) or "whole" (a small image's whole pixels, split).
    downscaled_blocks: Optional[tuple[int, int]] = None
    downscaled_blocks_from: Optional[Literal["tiles", "whole"]] = None
    # The factor (x, y) an image was upscaled by after compression, other than 2 or 4 (Scorer.halve_upscaled): damage
    # found on it resampled back to its source size; the grids are then that image's.
    upscaled_by: Optional[tuple[float, float]] = None
    # Chroma's sharpness relative to luma's (resized.chroma_sharpness) where it read as a subsampling codec's chroma,
    # resized since, or where it was read before a grid was found in chroma (Scorer.find_downscaled); None otherwise.
    chroma_sharpness: Optional[float] = None

    @property
    def word(self) -> str:
        """'none': nothing a codec could have marked (flat, blank, too small); 'weak': detail, but too few
        quadrants of the image's own pixels to check one grid on (small images, one textured patch);
        'grid': enough quadrants to measure their agreement; 'halved': damage found only on the image halved, once
        or twice (an upscale x2 or x4 after compression), the grids being the halved image's; 'downscaled': a JPEG's
        block grid found at the period a downscale after compression gave it, in luma or in chroma (ccscore.resized),
        or its quantisation read back through the downscale (ccscore.downscaled_blocks), or no grid but the look of
        resized JPEG damage (ccscore.resized_appearance: the period then the strongest plane's peak's, a guess);
        'upscaled': a JPEG's block grid found on the image resampled back to a size it was upscaled from by another
        factor than 2 or 4;
        'chroma': no grid the model or the judgements above found, but chroma softer than luma, as a subsampling codec
        leaves it (resized after compression)."""
        if self.halvings:
            return "halved"
        if self.upscaled_by is not None:
            return "upscaled"
        if self.downscaled_period is not None:
            return "downscaled"
        if self.chroma_sharpness is not None:
            return "chroma"
        if self.detailed_tiles == 0:
            return "none"
        return "grid" if any(v.checkable for v in self.grids.values()) else "weak"


def quadrant_extents(tile_size: int, period: int) -> tuple[int, int]:
    """Pixel rows (or columns) the two halves of a tile reach, as the model splits them: the first half
    covers [0, first), the second [.., second)."""
    blocks = (tile_size - period + 1) // (2 * period) * 2  # the model keeps an even number of blocks
    return (blocks // 2) * period + period - 1, blocks * period + period - 1


def split_phases(phases: np.ndarray, periods: Sequence[int]) -> dict[int, np.ndarray]:
    """The model's phase output [N, sum 4 * n * n] -> {n: [N, 4, n * n]} (quadrants TL, TR, BL, BR)."""
    out, start = {}, 0
    for n in periods:
        out[n] = phases[:, start : start + 4 * n * n].reshape(-1, 4, n * n)
        start += 4 * n * n
    if start != phases.shape[1]:
        raise ValueError(f"phases output has {phases.shape[1]} columns, grids {list(periods)} need {start}")
    return out


def own_quadrants(boxes: Sequence[Box], tile_size: int, period: int) -> np.ndarray:
    """[N, 4] bool: the quadrants at least half made of each tile's own pixels along both axes (a small
    image's tile is edge-padded; padding adds no phase preference, but a quadrant of mostly padding would
    vote on its tie-breaking, not on the image)."""
    first, second = quadrant_extents(tile_size, period)
    start = (first - period + 1)  # where the second half's blocks begin
    height = np.array([b[3] - b[1] for b in boxes])
    width = np.array([b[2] - b[0] for b in boxes])
    rows = np.stack([2 * height >= first, 2 * (height - start) >= second - start], axis=1)
    cols = np.stack([2 * width >= first, 2 * (width - start) >= second - start], axis=1)
    return (rows[:, :, None] & cols[:, None, :]).reshape(-1, 4)


def grid_vote(scores: np.ndarray, boxes: Sequence[Box], period: int, voters: np.ndarray) -> GridVote:
    """Each voting quadrant's best phase in image coordinates; the modal one and how many point at it."""
    n = period
    best = scores.argmax(axis=2)  # [N, 4]
    contrast = scores.max(axis=2) - scores.mean(axis=2)
    voters = voters & (contrast >= MIN_PHASE_CONTRAST)
    if not voters.any():
        return GridVote(n, None, 0, 0)
    left = np.array([b[0] for b in boxes])[:, None]
    top = np.array([b[1] for b in boxes])[:, None]
    image_phase = (((best // n + top) % n) * n + (best % n + left) % n)[voters]
    counts = np.bincount(image_phase, minlength=n * n)
    modal = int(counts.argmax())
    return GridVote(n, divmod(modal, n), int(counts[modal]), int(voters.sum()))


def image_evidence(phases: np.ndarray, boxes: Sequence[Box], periods: Sequence[int], tile_size: int) -> ImageEvidence:
    per_grid = split_phases(phases, periods)
    largest = max(periods)  # the largest block: its near-zero share measures detail best
    # Padding repeats the image's own border, so a padded quadrant has detail only where the image has.
    detailed = (1.0 - per_grid[largest].mean(axis=2)) >= MIN_TILE_DETAIL  # [N, 4]
    votes = {n: grid_vote(s, boxes, n, detailed & own_quadrants(boxes, tile_size, n)) for n, s in per_grid.items()}
    return ImageEvidence(int(detailed.any(axis=1).sum()), votes)
