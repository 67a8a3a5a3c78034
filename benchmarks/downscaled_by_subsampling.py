"""JPEG then downscaled, caught with the chroma subsampled (4:2:0) and not (4:4:4): issue #12, session 17.

The evaluation sets draw 4:4:4 for 30% of their JPEGs (`degrade.random_jpeg`); most tools write 4:2:0 by default
(Pillow, cjpeg, ImageMagick under quality 90), and only subsampled chroma shows the `chroma` judgement anything. For
each clean source of a built evaluation set: Pillow JPEG at a quality drawn from 50-90, once 4:2:0 and once 4:4:4
(the same quality), both downscaled by the same factor (0.5-0.9) and kernel (box, bilinear, bicubic, Lanczos), scored
by the bundled model and the default runtime. Prints, per subsampling, how many are caught, named JPEG, and by which
evidence.

    python benchmarks/downscaled_by_subsampling.py --eval-set data/eval-wild-cal
"""

from __future__ import annotations

import argparse
import collections
import csv
import io
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image

KERNELS = (Image.Resampling.BOX, Image.Resampling.BILINEAR, Image.Resampling.BICUBIC, Image.Resampling.LANCZOS)
SUBSAMPLINGS = {"4:2:0": 2, "4:4:4": 0}  # Pillow's codes
_scorer = None


def judge(task: tuple[str, int]) -> dict[str, tuple[str, str]]:
    """One source: {subsampling: (label, evidence)}."""
    global _scorer
    if _scorer is None:
        from ccscore import Scorer

        _scorer = Scorer(device="cpu")
    path, seed = task
    rng = np.random.default_rng(seed)
    quality, scale = int(rng.integers(50, 91)), float(rng.uniform(0.5, 0.9))
    kernel = KERNELS[int(rng.integers(0, len(KERNELS)))]
    with Image.open(path) as opened:
        source = opened.convert("RGB")
    out = {}
    for name, code in SUBSAMPLINGS.items():
        buf = io.BytesIO()
        source.save(buf, "JPEG", quality=quality, subsampling=code)
        with Image.open(buf) as decoded:
            damaged = decoded.convert("RGB")
        damaged = damaged.resize((max(1, round(damaged.width * scale)), max(1, round(damaged.height * scale))), kernel)
        result = _scorer.score(np.asarray(damaged))
        out[name] = (result.label, result.evidence.word if result.evidence is not None else "none")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-set", required=True, type=Path)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    rows = [r for r in csv.DictReader(open(args.eval_set / "manifest.csv")) if r["kind"] == "clean"]
    tasks = [(str(args.eval_set / r["path"]), seed) for seed, r in enumerate(rows)]
    with Pool(args.workers) as pool:
        judged = pool.map(judge, tasks, chunksize=4)
    print(f"{'subsampling':12} {'n':>4} {'caught':>8} {'named JPEG':>11}  caught by evidence")
    for name in SUBSAMPLINGS:
        labels = collections.Counter(j[name][0] for j in judged)
        words = collections.Counter(j[name][1] for j in judged if j[name][0] != "clean")
        n, caught = len(judged), len(judged) - labels["clean"]
        print(f"{name:12} {n:4} {100 * caught / n:7.1f}% {100 * labels['jpeg'] / n:10.1f}%  {dict(words)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
