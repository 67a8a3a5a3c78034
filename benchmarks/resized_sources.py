"""The source scan's resized-JPEG check (`lossless_check.resized_jpeg_agreement`) over every image the earlier checks
kept (those it rejects included): how far each one's windows, read back whole through a downscale, agree on one 8x8 phase. Prints the
distribution (images with 12 windows or more), those agreeing 0.6 or more, and how many `carries_resized_jpeg` would
reject. Session 21's figures in lossless_check's comment come from this run on data/cache (both splits).

    python benchmarks/resized_sources.py --cache data/cache --workers 2
"""

from __future__ import annotations

import argparse
import collections
import csv
import sys
from multiprocessing import Pool
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT / "export", ROOT / "runtime"):  # until the packages are installed
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))


def agreement(path: str):
    """(path, (agreeing, read, period) or None), the image loaded as the source scan loads it."""
    from ccscore_export.data.lossless_check import resized_jpeg_agreement
    from ccscore_export.data.sources import _load_candidate

    loaded = _load_candidate(Path(path), {})
    if loaded is None:
        return path, None
    read = resized_jpeg_agreement(loaded[0])
    return path, None if read is None else (read.agreeing, read.read, read.period)


def main(argv=None) -> None:
    from ccscore_export.data.lossless_check import RESIZED_JPEG_MIN_AGREEMENT, RESIZED_JPEG_MIN_WINDOWS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=ROOT / "data" / "cache")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    with open(args.cache / "manifest.csv", newline="") as f:
        kept = [str(args.cache / row["path"]) for row in csv.DictReader(f)
                if row["status"] in ("kept", "rejected_resized")]  # as the earlier checks left them
    with Pool(args.workers) as pool:
        reads = pool.map(agreement, kept, chunksize=8)
    judged = [(path, read) for path, read in reads if read is not None and read[1] >= RESIZED_JPEG_MIN_WINDOWS]
    shares = collections.Counter(int(10 * read[0] / read[1]) / 10 for _, read in judged)  # 0.65 is in 0.6's bin
    print(f"{len(kept)} images the earlier checks kept; {len(judged)} read with {RESIZED_JPEG_MIN_WINDOWS} windows or more")
    print("share agreeing: " + ", ".join(f"{share:.1f}: {n}" for share, n in sorted(shares.items())))
    for path, (agreeing, read, period) in sorted(judged, key=lambda item: -item[1][0] / item[1][1]):
        if agreeing < 0.6 * read:
            break
        print(f"  {agreeing / read:.2f} ({agreeing} of {read} at {period:.3f}) {Path(path).relative_to(args.cache)}")
    rejected = sum(read[0] >= RESIZED_JPEG_MIN_AGREEMENT * read[1] for _, read in judged)
    print(f"rejected as a JPEG downscaled: {rejected}")


if __name__ == "__main__":
    main()
