"""Fits ccscore.webp_quality.QUALITY_KNOTS and QUALITY_FIT: WebP files encoded here from training art (never an
evaluation set's), read as the runtime reads them (the model's tiles, their 4x4 grids), the quality a line in what
the grids show (`fit_terms`: piecewise linear in the steps' mean quality, its knots at the samples' quartiles) of
the least mean absolute error, the benchmark's measure (least squares let a few reads far off pull the line).

The files are made as the evaluation sets make theirs, on other art, in the proportions of their six WebP kinds:
4 in 6 Pillow (quality 30-95, method 0-6; the sets' four Pillow kinds), 1 in 6 cwebp (a random preset, method,
sometimes -sharp_yuv), 1 in 6 grey art through either.

    python -m ccscore_export.fit_webp_quality [--samples 6000] [--workers 2] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
from multiprocessing import Pool
from typing import Optional

import numpy as np

from ccscore import Scorer
from ccscore.scorer import pixels_read, tile_grid_offsets
from ccscore.webp_quality import MACROBLOCK, fit_terms, fitted_quality, read_lattice
from ccscore_export.data import degrade, sources, wild

QUALITIES = (30, 95)
MAX_SIDE = 1024  # the evaluation sets' sources are at most this large
RIDGE = 1e-2
FOLDS = 5
KNOT_QUANTILES = (0.25, 0.5, 0.75)
# Least absolute deviations as iteratively reweighted least squares: this many rounds, residuals under
# MIN_RESIDUAL (quality points) weighed as that.
IRLS_ROUNDS = 30
MIN_RESIDUAL = 0.5
# How the samples are encoded, and how often: as the evaluation sets' WebP kinds (webp_q50/75/90/95, webp_cwebp,
# webp_grey).
WAYS = ("pillow", "cwebp", "grey")
WAY_SHARES = (4 / 6, 1 / 6, 1 / 6)

_SCORER: Optional[Scorer] = None
_FILES: list = []


def _start(files: list) -> None:
    global _SCORER, _FILES
    _SCORER, _FILES = Scorer(intra_op_threads=1), files


def encoded_sample(rng: np.random.Generator, rgb: np.ndarray) -> tuple[np.ndarray, int, str]:
    """(decoded RGB, quality, how) of one WebP made from clean RGB art."""
    quality = int(rng.integers(QUALITIES[0], QUALITIES[1] + 1))
    way = str(rng.choice(WAYS, p=WAY_SHARES))
    image = wild.random_grey(rng, rgb).image if way == "grey" else rgb
    if way == "cwebp" or (way == "grey" and rng.random() < 0.5):
        out, how = degrade.random_cwebp(rng, wild.as_rgb(image), quality)
    else:
        out, how = degrade.encode_webp_pillow(wild.as_rgb(image), quality, int(rng.integers(0, 7))), "pillow"
    return wild.as_rgb(out), quality, f"{way}:{how}"


def sample_features(seed: int) -> Optional[tuple[np.ndarray, int, str]]:
    """(WebPQualityEstimate.features, true quality, how) of sample `seed`; None where its grid shows no step."""
    rng = np.random.default_rng(seed)
    rgb = sources.load_clean(_FILES[int(rng.integers(len(_FILES)))][1])
    h, w = rgb.shape[:2]
    y0, x0 = int(rng.integers(0, max(h - MAX_SIDE, 0) + 1)), int(rng.integers(0, max(w - MAX_SIDE, 0) + 1))
    rgb = np.ascontiguousarray(rgb[y0 : y0 + MAX_SIDE, x0 : x0 + MAX_SIDE])
    decoded, quality, how = encoded_sample(rng, rgb)
    tiles, _ = _SCORER.tile(decoded)
    read = read_lattice(pixels_read(tiles), tile_grid_offsets(tiles.boxes, (0, 0), MACROBLOCK))
    return None if read is None else (read.features, quality, how)


def group(how: str) -> str:
    """'grey:cwebp:photo:sharp_yuv' -> 'grey:photo'; 'pillow:pillow' -> 'pillow'."""
    way, encoder, *preset = how.split(":")
    if encoder == "pillow":
        return way if way == "pillow" else f"{way}:pillow"
    return f"{way}:{preset[0]}"


def least_squares(x: np.ndarray, y: np.ndarray, sample_weights: Optional[np.ndarray] = None) -> np.ndarray:
    """Weights then constant, lightly ridged (on standardised features, so no feature's scale matters); each
    sample's squared error counted `sample_weights` times (default once)."""
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    penalty = RIDGE * np.eye(z.shape[1])
    penalty[-1, -1] = 0.0
    weighted = z * (np.ones(len(y)) if sample_weights is None else sample_weights)[:, None]
    w = np.linalg.solve(weighted.T @ z + penalty, weighted.T @ y)
    return np.append(w[:-1] / scale, w[-1] - np.sum(w[:-1] * mean / scale))


def least_absolute_deviations(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Weights then constant of the least mean absolute error: least squares reweighted by 1 / |residual|."""
    w = least_squares(x, y)
    for _ in range(IRLS_ROUNDS):
        w = least_squares(x, y, 1.0 / np.maximum(np.abs(x @ w[:-1] + w[-1] - y), MIN_RESIDUAL))
    return w


def fit(features: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(QUALITY_KNOTS, QUALITY_FIT) of samples' WebPQualityEstimate.features and true qualities."""
    knots = np.quantile(features[:, 0], KNOT_QUANTILES)
    return knots, least_absolute_deviations(fit_terms(features, knots), y)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=6000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    files = sources.kept_files("train")
    if not files:
        print(f"no training art in {sources.DEFAULT_CACHE} (set CCSCORE_DATA_CACHE)", file=sys.stderr)
        return 1
    with Pool(args.workers, initializer=_start, initargs=(files,)) as pool:
        read = [r for r in pool.map(sample_features, range(args.seed, args.seed + args.samples), chunksize=8) if r]
    x, y = np.array([r[0] for r in read]), np.array([r[1] for r in read], np.float64)
    fold = np.arange(len(y)) % FOLDS
    cv = np.zeros(len(y))
    for k in range(FOLDS):
        cv[fold == k] = fitted_quality(x[fold == k], *fit(x[fold != k], y[fold != k]))
    print(f"{len(y)} of {args.samples} samples show a step; {FOLDS}-fold MAE {np.mean(np.abs(cv - y)):.2f}")
    groups = np.array([group(r[2]) for r in read])
    for way in sorted(set(groups)):
        m = groups == way
        error = cv[m] - y[m]
        print(f"  {way:18s} n={int(m.sum()):4d}  MAE {np.mean(np.abs(error)):.2f}  bias {np.mean(error):+.2f}")
    knots, weights = fit(x, y)
    print("QUALITY_KNOTS = np.array([" + ", ".join(f"{v:.4g}" for v in knots) + "])")
    print("QUALITY_FIT = np.array([" + ", ".join(f"{v:.6g}" for v in weights) + "])")
    return 0


if __name__ == "__main__":
    sys.exit(main())
