"""Fits ccscore.webp_quality.QUALITY_FIT: WebP files encoded here from training art (never an evaluation set's),
read as the runtime reads them (the model's tiles, their 4x4 grids), the quality a least-squares line of what
the grids show.

The files are made as the evaluation sets make theirs, on other art: a third Pillow (quality 30-95, method 0-6),
a third cwebp (a random preset, method, sometimes -sharp_yuv), a third grey art through either.

    python -m ccscore_export.fit_webp_quality [--samples 2000] [--workers 2] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
from multiprocessing import Pool
from typing import Optional

import numpy as np

from ccscore import Scorer
from ccscore.scorer import pixels_read, tile_grid_offsets
from ccscore.webp_quality import MACROBLOCK, read_lattice
from ccscore_export.data import degrade, sources, wild

QUALITIES = (30, 95)
MAX_SIDE = 1024  # the evaluation sets' sources are at most this large
RIDGE = 1e-2
FOLDS = 5

_SCORER: Optional[Scorer] = None
_FILES: list = []


def _start(files: list) -> None:
    global _SCORER, _FILES
    _SCORER, _FILES = Scorer(intra_op_threads=1), files


def encoded_sample(rng: np.random.Generator, rgb: np.ndarray) -> tuple[np.ndarray, int, str]:
    """(decoded RGB, quality, how) of one WebP made from clean RGB art."""
    quality = int(rng.integers(QUALITIES[0], QUALITIES[1] + 1))
    way = str(rng.choice(["pillow", "cwebp", "grey"]))
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


def least_squares(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Weights then constant, lightly ridged (on standardised features, so no feature's scale matters)."""
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    penalty = RIDGE * np.eye(z.shape[1])
    penalty[-1, -1] = 0.0
    w = np.linalg.solve(z.T @ z + penalty, z.T @ y)
    return np.append(w[:-1] / scale, w[-1] - np.sum(w[:-1] * mean / scale))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
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
        w = least_squares(x[fold != k], y[fold != k])
        cv[fold == k] = np.clip(x[fold == k] @ w[:-1] + w[-1], 0, 100)
    print(f"{len(y)} of {args.samples} samples show a step; {FOLDS}-fold MAE {np.mean(np.abs(cv - y)):.2f}")
    groups = np.array([group(r[2]) for r in read])
    for way in sorted(set(groups)):
        m = groups == way
        error = cv[m] - y[m]
        print(f"  {way:18s} n={int(m.sum()):4d}  MAE {np.mean(np.abs(error)):.2f}  bias {np.mean(error):+.2f}")
    w = least_squares(x, y)
    print("QUALITY_FIT = np.array([" + ", ".join(f"{v:.6g}" for v in w) + "])")
    return 0


if __name__ == "__main__":
    sys.exit(main())
