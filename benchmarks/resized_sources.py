"""The source scan's resized-JPEG check (`lossless_check.resized_jpeg_agreement`) over every image the earlier checks
kept (those it rejects included): how far each one's windows, read back whole through a downscale, agree on one 8x8
phase. Prints the distribution (images with 12 windows or more), those agreeing 0.6 or more, and how many
`carries_resized_jpeg` would reject. Session 21's figures in lossless_check's comment come from this run on data/cache
(both splits).

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
    """(path, its `BackAgreement` or None), the image loaded as the source scan loads it."""
    from ccscore_export.data.lossless_check import resized_jpeg_agreement
    from ccscore_export.data.sources import _load_candidate

    loaded = _load_candidate(Path(path), {})
    if loaded is None:
        return path, None
    return path, resized_jpeg_agreement(loaded[0])


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
    judged = [(path, read) for path, read in reads if read is not None and read.read >= RESIZED_JPEG_MIN_WINDOWS]
    shares = collections.Counter(int(10 * read.agreeing / read.read) / 10 for _, read in judged)  # 0.65: 0.6's bin
    print(f"{len(kept)} images the earlier checks kept; {len(judged)} read with {RESIZED_JPEG_MIN_WINDOWS} windows "
          "or more")
    print("share agreeing: " + ", ".join(f"{share:.1f}: {n}" for share, n in sorted(shares.items())))
    for path, read in sorted(judged, key=lambda item: -item[1].agreeing / item[1].read):
        if not read.agrees(0.6, RESIZED_JPEG_MIN_WINDOWS):
            break
        print(f"  {read.agreeing / read.read:.2f} ({read.agreeing} of {read.read} at {read.period:.3f}) "
              f"{Path(path).relative_to(args.cache)}")
    rejected = sum(read.agrees(RESIZED_JPEG_MIN_AGREEMENT, RESIZED_JPEG_MIN_WINDOWS) for _, read in judged)
    print(f"rejected as a JPEG downscaled: {rejected}")


if __name__ == "__main__":
    main()
