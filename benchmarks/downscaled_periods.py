"""How near the runtime's grid periods come to a JPEG-then-downscaled image's true one, and what the blocks' read-back
would find at the true period (issue #12, session 22): an oracle for the `downscaled` evidence's blocks.

For each image of the named kind of one or more evaluation sets (built by `ccscore-export build-data --eval-from`,
whole or `--kinds` draws), takes the true period from the manifest (8 x the image's width over its clean source's,
the source cropped to the build's MAX_SIDE: `--clean-dir`, by default the set's own `clean/` folder) and reads, as the
runtime does (`TileReads.read_back_periods`: each plane's peak, the strongest first), the periods the blocks are read
back at. Prints the nearest period's relative error, binned, with the runtime's misses in each bin, and how many of
the misses the blocks' rules (`Scorer.blocks_agree`: the scored tiles' windows, or a small image's whole pixels where
they give too few) would find at the true period, among those the runtime asks (scored with detail, no other codec
proved, the head leaning lossy at all, the judge not flagging: `Scorer._judge_resized`'s gate), with the judge's gate
(its probability 0.05 or more) and without it (either way, a record the threshold would still call clean once proven
JPEG's counts as found). The true period is known here only because the set records it.

    python benchmarks/downscaled_periods.py --eval-set data/eval-wild-cal --workers 2
    python benchmarks/downscaled_periods.py --eval-set /tmp/jd-41 --clean-dir data/eval-clean-cal --workers 2
"""

from __future__ import annotations

import argparse
import csv
import sys
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image

ERROR_BINS = (0.001, 0.002, 0.004, 0.01, 0.03, np.inf)

_scorer = None


def _read(task: tuple[str, str]) -> dict:
    """One image's nearest read-back period's error, whether the runtime missed it, and whether the blocks' rules
    would find it at its true period (with the judge's gate, and without it)."""
    global _scorer
    from ccscore import Scorer
    from ccscore import scorer as scoring
    from ccscore.scorer import TileReads
    from ccscore_export.data.build import MAX_SIDE as BUILD_MAX_SIDE  # the build crops sources to it

    path, source = task
    if _scorer is None:
        _scorer = Scorer(device="cpu")
    with Image.open(source) as clean:
        source_width = min(clean.size[0], BUILD_MAX_SIDE)
    result = _scorer.score(path)
    tiles, size = _scorer.tile(path)
    reads = TileReads(tiles)
    true_period = 8 * size[0] / source_width
    periods = [period for period, _ in reads.read_back_periods()]
    judged = None
    if _scorer.resized_judge is not None and result.tiles:
        values = Scorer._resized_inputs(reads, size, result)  # as `resized_inputs`, on the tiles already read
        judged = None if values is None else float(_scorer.resized_judge.probability(values))

    missed = result.label == "clean"
    asked = (missed and bool(result.tiles) and Scorer._may_be_resized_jpeg(result)
             and Scorer._mean_tile_clean(result) <= scoring.JUDGE_MAX_TILE_CLEAN
             and not (judged is not None and _scorer.resized_judge.flags(judged)))

    def found_at(period: float, gated: bool) -> bool:
        """The blocks' rules at this period, for a miss the runtime asks; `gated`: only where the judge leans."""
        if not asked or (gated and (judged or 0.0) < scoring.BLOCKS_MIN_JUDGED):
            return False
        return Scorer.blocks_agree(reads, size, period, judged or 0.0) is not None

    return {"error": min((abs(p / true_period - 1) for p in periods), default=None), "missed": missed,
            "true_gated": found_at(true_period, True), "true_ungated": found_at(true_period, False)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-set", required=True, type=Path, nargs="+")
    parser.add_argument("--kind", default="jpeg_downscaled")
    parser.add_argument("--clean-dir", type=Path, help="the clean sources (default: each set's clean/ folder)")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    tasks = []
    for root in args.eval_set:
        with open(root / "manifest.csv", newline="") as f:
            for row in csv.DictReader(f):
                if row["kind"] != args.kind:
                    continue
                # the set's own clean kind holds each source flattened as <its path, "/" as "__">.png
                source = (args.clean_dir / row["source"] if args.clean_dir else
                          root / "clean" / Path(row["source"]).with_suffix(".png").as_posix().replace("/", "__"))
                tasks.append((str(root / row["path"]), str(source)))
    if not tasks:
        print(f"no {args.kind} images in {', '.join(map(str, args.eval_set))}", file=sys.stderr)
        return 2
    with Pool(args.workers) as pool:
        records = pool.map(_read, tasks, chunksize=4)
    missed = [r for r in records if r["missed"]]
    print(f"{len(records)} {args.kind} images, {len(missed)} missed by the runtime")
    print("nearest read-back period's error against the true period (relative)")
    print(f"{'error under':>12s}  {'n':>4s}  {'missed':>6s}")
    low = 0.0
    for high in ERROR_BINS:
        binned = [r for r in records if r["error"] is not None and low <= r["error"] < high]
        print(f"{high:12.3f}  {len(binned):4d}  {sum(r['missed'] for r in binned):6d}")
        low = high
    print(f"{'no period':>12s}  {sum(r['error'] is None for r in records):4d}  "
          f"{sum(r['missed'] for r in records if r['error'] is None):6d}")
    print(f"misses the blocks' rules would find at the true period: {sum(r['true_gated'] for r in missed)} "
          f"(judge's gate kept), {sum(r['true_ungated'] for r in missed)} (without it)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
