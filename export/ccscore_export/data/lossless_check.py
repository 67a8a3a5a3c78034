"""Block-grid evidence statistic: does an image still carry the traces of a lossy block codec?

A codec quantises the block DCT of its own grid; after decoding, the DCT taken *on that grid* has many
more near-zero AC coefficients than the DCT taken at any other offset. So we compute the orthonormal
luma block-DCT at every pixel offset, measure the share of near-zero AC coefficients separately for
each grid phase (64 phases for 8x8, 16 for 4x4) and score = best phase - median phase. A clean image
has no preferred phase (score ~ 0); a JPEG (8x8) or WebP/VP8 (4x4) decode has one.

Details that matter:
- Near-zero threshold |c| < 0.5 (orthonormal DCT of 0-255 luma; JPEG's coefficients are in the same
  units). A coefficient quantised to zero comes back as rounding noise only: the uint8 rounding of the
  decoded RGB adds ~0.29 rms per pixel, which the orthonormal DCT keeps at ~0.29 rms per coefficient, so
  0.5 catches most of them while untouched texture rarely lands that close to zero. Measured on the
  calibration set, the margin between the highest clean score and the lowest JPEG q=95 score is widest at
  0.5 (0.020 vs 0.056); at 1.0 it shrinks to 0.024 vs 0.028 and at 2.0 the classes overlap (AUROC 0.98),
  because at q=95 the quantiser steps are ~1-3 and off-grid texture then also counts as "near zero".
- For 4x4 only coefficients with both frequencies > 0 are counted. VP8 predicts each block from its
  neighbours before the transform; its DC / vertical / horizontal / TrueMotion predictors are sums of a
  row term and a column term, which only reach the first row and first column of the block DCT, so the
  remaining 9 coefficients keep the quantisation sparsity of the residual.
- Only one crop (<= 512x512, the most textured of 9 candidate windows) is analysed: enough evidence,
  and 1024x1024 inputs stay well under a second.

Calibration (`calibrate()`, 512 px window), measured AUROC clean vs compressed:
- 100 procedural illustrations (seed 0) vs their JPEG q=95 4:2:0 / WebP q=90 decodes: AUROC 1.000 (score8
  vs JPEG) and 1.000 (score4 vs WebP). Clean score8 max 0.024 (99th pct 0.021), JPEG q=95 min 0.058;
  clean score4 max 0.016, WebP q=90 min 0.031. Thresholds 0.035 / 0.02 sit in those gaps.
- 150 kept real images per split vs their own JPEG q=95 / WebP q=90 decodes: train sources AUROC
  0.961 / 0.977 (71% / 76% of the q=95 / q=90 decodes caught), val sources 0.995 / 0.999 (97% / 97%).
  Misses are mostly flat clip art, where q=95 reproduces large areas exactly and little evidence remains.
- Known clean false positives: periodic structure on a 4- or 8-pixel period (axis-aligned screentone with
  a 4 px pitch, 32 px tilesets, pixel fonts), i.e. grids the statistic cannot tell from a codec's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

NEAR_ZERO = 0.5
MAX_CROP = 512

# Rejection thresholds for candidate clean images, set from `calibrate()` runs (see module doc).
THRESHOLD_8X8 = 0.035
THRESHOLD_4X4 = 0.02



def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II basis, rows = frequencies."""
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m.astype(np.float32)


def _luma(rgb: np.ndarray) -> np.ndarray:
    if rgb.ndim == 2:
        return rgb.astype(np.float32)
    rgb = rgb[..., :3].astype(np.float32)
    return 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]


def _textured_crop(y: np.ndarray, size: int) -> np.ndarray:
    """The size x size window (of a 3x3 set of candidates) holding the most moderate texture.

    Flat areas (sprite backgrounds, fills) are sparse at every phase and carry no evidence, so a central
    crop of a sprite on a transparent background would score ~0 whatever its history.
    """
    h, w = y.shape
    if h <= size and w <= size:
        return y
    small = y[::4, ::4]
    grad = np.abs(np.diff(small, axis=1))[:-1] + np.abs(np.diff(small, axis=0))[:, :-1]
    useful = (grad > 2.0) & (grad < 64.0)
    best, best_val = (0, 0), -1.0
    # Origins on multiples of 8 keep the reported phases relative to the image origin.
    for y0 in np.linspace(0, max(0, h - size), 3).astype(int) // 8 * 8:
        for x0 in np.linspace(0, max(0, w - size), 3).astype(int) // 8 * 8:
            val = useful[y0 // 4 : (y0 + size) // 4, x0 // 4 : (x0 + size) // 4].mean()
            if val > best_val:
                best, best_val = (int(y0), int(x0)), float(val)
    return y[best[0] : best[0] + size, best[1] : best[1] + size]


def phase_sparsity(y: np.ndarray, n: int, near_zero: float = NEAR_ZERO) -> np.ndarray:
    """Share of near-zero AC coefficients of the n x n block DCT, per grid phase: float [n, n].

    Entry [py, px] averages over all blocks whose top-left corner is at (py, px) modulo n, relative to the
    origin of `y` (so a crop keeps the right phase only if its offset is a multiple of n; the score does
    not care which phase wins).
    """
    basis = _dct_matrix(n)
    # Separable DCT at every offset: rows first (H, W-n+1, n), then columns (H-n+1, W-n+1, n, n).
    rows = sliding_window_view(y, n, axis=1) @ basis.T
    coef = sliding_window_view(rows, n, axis=0) @ basis.T  # [..., horizontal freq, vertical freq]
    if n == 4:
        mask = np.zeros((n, n), bool)
        mask[1:, 1:] = True  # immune to VP8's separable intra predictors (see module doc)
    else:
        mask = np.ones((n, n), bool)
        mask[0, 0] = False
    zero_share = (np.abs(coef[..., mask]) < near_zero).mean(axis=-1)
    hh, ww = zero_share.shape
    hh, ww = hh - hh % n, ww - ww % n
    return zero_share[:hh, :ww].reshape(hh // n, n, ww // n, n).mean(axis=(0, 2))


@dataclass(frozen=True)
class GridScore:
    score8: float  # best - median phase share, 8x8 DCT (JPEG evidence)
    score4: float  # same for 4x4 (WebP / VP8 evidence)
    phase8: tuple[int, int]  # (y, x) of the best 8x8 phase, relative to the analysed crop
    phase4: tuple[int, int]

    @property
    def is_lossless(self) -> bool:
        return self.score8 <= THRESHOLD_8X8 and self.score4 <= THRESHOLD_4X4


def grid_score(rgb: np.ndarray, max_crop: int = MAX_CROP) -> GridScore:
    """Block-grid evidence of an RGB (or grey) uint8 image; higher = more likely lossy-compressed."""
    y = _textured_crop(_luma(rgb), max_crop)
    out = []
    for n in (8, 4):
        if min(y.shape) < 2 * n:
            out.append((0.0, (0, 0)))
            continue
        share = phase_sparsity(y, n)
        best = np.unravel_index(int(np.argmax(share)), share.shape)
        out.append((float(share.max() - np.median(share)), (int(best[0]), int(best[1]))))
    (s8, p8), (s4, p4) = out
    return GridScore(s8, s4, p8, p4)


# A JPEG downscaled afterwards shows no grid at 8 px, so `grid_score` passes it; read back through the downscale at
# one of its grid peaks' periods (the runtime's `ccscore.downscaled_blocks`, the whole image split into windows), its
# windows agree on one 8x8 phase where clean art's scatter. Measured with this read (session 21,
# benchmarks/resized_sources.py) on the 4,509 Debian PNGs the earlier checks kept (both splits; 1,950 of them give 12
# windows or more): all agree 0.65 at most but one,
# flare-game's menus/book2.png, a photographed parchment (a validation source): 20 of 20 at a period of 6.06, a JPEG
# downscaled by 0.757 (its variants were 6 of the calibration set's 53 clean images flagged). Synthetic textures saved
# as JPEG (quality 75, 90) and downscaled so agree 0.8-0.9, clean ones 0.2-0.5; procedural illustrations (flat fills,
# whose windows scatter) 0.5-0.85 as JPEG downscaled: those this misses. Missed too: images too small for 12 windows,
# grey ones whose luma peak misses the grid (chroma's is not read), sprites whose windows cross alpha edges, factors
# whose peaks read 0.2-0.5% off (a texture at 0.62 and 0.9 agreed 0.5 and 0.75). Cost: about 0.02-0.1 s a small image,
# 0.3-0.9 s one over a megapixel (the 1024 px region), against 0.14 s for the checks before it.
RESIZED_JPEG_MIN_AGREEMENT = 0.8
RESIZED_JPEG_MIN_WINDOWS = 12
RESIZED_JPEG_MAX_SIDE = 1024  # the most textured tile's surroundings, for larger images: the read's cost bounded


def resized_jpeg_agreement(rgb: np.ndarray):
    """The best `downscaled_blocks.BackAgreement` (of RESIZED_JPEG_MIN_WINDOWS read or more where one is; then the
    share of windows agreeing, then windows read) of an RGB uint8 image read back whole at its luma's and chroma's grid
    peak periods (within RESIZED_JPEG_MAX_SIDE each way of its most textured content tile); None where no period is in
    the band or no tile is textured."""
    from ccscore.downscaled_blocks import back_agreement
    from ccscore.scorer import TileReads
    from ccscore.tiling import make_tiles

    tiles = make_tiles(rgb, "content", 128, {"max_tiles": 8})  # as the runtime's default model tiles
    boxes = tiles.boxes
    if not boxes:
        return None
    periods = [period for period, _ in TileReads(tiles).read_back_periods()]
    height, width = rgb.shape[:2]
    left, top, right, bottom = boxes[0]
    x0 = int(np.clip((left + right - RESIZED_JPEG_MAX_SIDE) // 2, 0, max(0, width - RESIZED_JPEG_MAX_SIDE)))
    y0 = int(np.clip((top + bottom - RESIZED_JPEG_MAX_SIDE) // 2, 0, max(0, height - RESIZED_JPEG_MAX_SIDE)))
    region = rgb[y0:y0 + RESIZED_JPEG_MAX_SIDE, x0:x0 + RESIZED_JPEG_MAX_SIDE, :3]
    box = (x0, y0, x0 + region.shape[1], y0 + region.shape[0])
    reads = [back_agreement([region], [box], (width, height), period, split=True) for period in periods]
    # a read of enough windows first: 1 of 1 at one period must not hide 19 of 20 at another
    return max(reads, key=lambda a: (a.read >= RESIZED_JPEG_MIN_WINDOWS, a.agreeing / a.read if a.read else 0.0,
                                     a.read), default=None)


def carries_resized_jpeg(rgb: np.ndarray) -> bool:
    """Whether the image's windows, read back through a downscale, agree as a resized JPEG's do
    (`resized_jpeg_agreement`: RESIZED_JPEG_MIN_AGREEMENT of at least RESIZED_JPEG_MIN_WINDOWS)."""
    read = resized_jpeg_agreement(rgb)
    return read is not None and read.agrees(RESIZED_JPEG_MIN_AGREEMENT, RESIZED_JPEG_MIN_WINDOWS)


def auroc(negatives: np.ndarray, positives: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    neg, pos = np.asarray(negatives, float), np.asarray(positives, float)
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + 0.5 * ties)


def calibrate(images: Iterable[np.ndarray] | None = None, n_images: int = 48, seed: int = 0, max_crop: int = MAX_CROP) -> dict:
    """Scores clean images against their own JPEG q=95 (4:2:0, Pillow) and WebP q=90 decodes.

    `images` defaults to `n_images` procedural illustrations. Returns the AUROCs and score quantiles from
    which the thresholds above were set.
    """
    from .degrade import encode_jpeg_pillow, encode_webp_pillow
    from .procedural import draw_illustration

    if images is None:
        rng = np.random.default_rng(seed)
        images = (draw_illustration(rng, *(int(v) for v in rng.integers(256, 769, size=2))) for _ in range(n_images))
    clean8, clean4, jpg8, webp4 = [], [], [], []
    for img in images:
        c = grid_score(img, max_crop)
        clean8.append(c.score8)
        clean4.append(c.score4)
        jpg8.append(grid_score(encode_jpeg_pillow(img, 95, subsampling=2), max_crop).score8)
        webp4.append(grid_score(encode_webp_pillow(img, 90), max_crop).score4)
    hi, lo = [0.5, 0.9, 0.99, 1.0], [0.0, 0.01, 0.1, 0.5]
    return {
        "n": len(clean8),
        "auroc_jpeg95_score8": auroc(clean8, jpg8),
        "auroc_webp90_score4": auroc(clean4, webp4),
        "clean_score8_q50_90_99_100": np.quantile(clean8, hi).round(4).tolist(),
        "clean_score4_q50_90_99_100": np.quantile(clean4, hi).round(4).tolist(),
        "jpeg95_score8_q0_1_10_50": np.quantile(jpg8, lo).round(4).tolist(),
        "webp90_score4_q0_1_10_50": np.quantile(webp4, lo).round(4).tolist(),
        "clean_passing_thresholds": float(np.mean((np.array(clean8) <= THRESHOLD_8X8) & (np.array(clean4) <= THRESHOLD_4X4))),
        "jpeg95_caught": float(np.mean(np.array(jpg8) > THRESHOLD_8X8)),
        "webp90_caught": float(np.mean(np.array(webp4) > THRESHOLD_4X4)),
    }
