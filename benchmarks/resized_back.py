"""What resampling an upscaled image back to its source size would show (issue #12, session 16): an oracle.

For each image of the named kinds of an evaluation set (built by `ccscore-export build-data --eval-from`), takes
the source size from the manifest (the clean source, cropped as `wild.random_resample` crops upscales), resizes
the image back to it (Lanczos; optionally off by a relative error, as an estimated factor would be) and scores
that with the bundled model and the default runtime. Prints, per kind and error, the labels the images get. The
source size is known here only because the set records it: the runtime has no such oracle (it would have to
estimate the factor from the pixels: see docs/evidence.md, evidence `upscaled`). Where the source was cropped before an
upscale (wider than 1600 / scale), the crop side comes from the manifest's factor, rounded to 0.01: it may be a
pixel off.

    python benchmarks/resized_back.py --eval-set data/eval-wild-cal --kinds jpeg_upscaled_other,upscaled_other
    python benchmarks/resized_back.py --eval-set data/eval-wild-cal --kinds jpeg_upscaled_other --errors 0,0.003,0.01
"""

from __future__ import annotations

import argparse
import collections
import csv
import re
from pathlib import Path

import numpy as np
from PIL import Image

UPSCALE_MAX_SIDE = 1600  # wild.random_resample's crop for upscales (kept in step with it)


def source_size(root: Path, row: dict) -> tuple[int, int]:
    """The size the image was resized from: its clean source, cropped to UPSCALE_MAX_SIDE / scale for upscales."""
    scale = float(re.search(r"(?:^|:)x([0-9.]+)", row["detail"]).group(1))
    with Image.open(root / "clean" / row["source"]) as source:
        width, height = source.size
    if scale > 1:
        side = max(8, int(UPSCALE_MAX_SIDE / scale))
        width, height = min(width, side), min(height, side)
    return width, height


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-set", required=True, type=Path)
    parser.add_argument("--kinds", required=True, help="K1,K2: resized kinds of the set")
    parser.add_argument("--errors", default="0", help="relative errors of the size resized back to (0,0.003)")
    parser.add_argument("--limit", type=int, default=0, help="at most this many images a kind (0: all)")
    args = parser.parse_args(argv)
    from ccscore import Scorer

    scorer = Scorer(device="cpu")
    kinds = args.kinds.split(",")
    errors = [float(e) for e in args.errors.split(",")]
    rows = [r for r in csv.DictReader(open(args.eval_set / "manifest.csv")) if r["kind"] in kinds]
    counts: dict[tuple[str, float], collections.Counter] = collections.defaultdict(collections.Counter)
    taken: collections.Counter = collections.Counter()
    for row in rows:
        if args.limit and taken[row["kind"]] >= args.limit:
            continue
        taken[row["kind"]] += 1
        width, height = source_size(args.eval_set, row)
        with Image.open(args.eval_set / row["path"]) as image:
            rgb = image.convert("RGB")
            for error in errors:
                back = rgb.resize((round(width * (1 + error)), round(height * (1 + error))), Image.LANCZOS)
                result = scorer.score(np.asarray(back))
                counts[(row["kind"], error)][result.label] += 1
                vote = result.evidence.grids.get(8) if result.evidence else None
                if result.flagged and vote is not None and vote.checkable and vote.agreement >= 0.75:
                    counts[(row["kind"], error)]["(flagged on an agreeing 8x8 grid)"] += 1
    print(f"{'kind':24s} {'error':>6s}  n    labels")
    for (kind, error), counter in sorted(counts.items()):
        n = sum(v for k, v in counter.items() if not k.startswith("("))
        print(f"{kind:24s} {error:6.3f}  {n:<4d} " + ", ".join(f"{k} {v}" for k, v in counter.most_common()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
