"""Every tile of an evaluation folder scored once (as the grid gate's calibration scores them: `calibrate.score_tiles`,
not halved), pickled for `gate_joint.py` (session 34; not part of the package). About 1 minute per set on 2 cores.

    python benchmarks/results/s34/store_tiles.py data/eval-wild-cal /tmp/s34/cal.pkl
"""
import csv
import pickle
import sys
from multiprocessing import Pool
from pathlib import Path

from ccscore import Scorer
from ccscore_export.calibrate import score_tiles

_scorer = None


def scored(task):
    global _scorer
    root, rows = task
    if _scorer is None:
        _scorer = Scorer(halve_upscaled=False, intra_op_threads=1)
    return score_tiles(_scorer, root, rows, log=lambda *args: None)


if __name__ == "__main__":
    root, out = Path(sys.argv[1]), sys.argv[2]
    rows = list(csv.DictReader(open(root / "manifest.csv", newline="")))
    with Pool(2) as pool:
        stored = [item for part in pool.imap(scored, [(root, rows[k:k + 50]) for k in range(0, len(rows), 50)])
                  for item in part]
    with open(out, "wb") as f:
        pickle.dump(stored, f)
    print(f"{len(stored)} of {len(rows)} images scored")
