"""Per clean and JPEG-then-downscaled image of evaluation folders, scored by the runtime with MODEL: its verdict with
the resized-damage judge and appearance network asked but never flagging (thresholds set to 1; the blocks' read,
which the judge's probability opens, still reads), and where that leaves it clean: the judge's probability `p`, the
network's score `s` and the tiles' mean P(clean) before the gate (`lean`). The bundled judge and network are used
whatever MODEL's digest (their scores do not depend on the grid gate: MODEL is the bundled graph with other gate
centers, `regate.py`). Session 34; not part of the package. About 10 minutes for the two calibration sets, 5 for the
report set, on 2 cores.

    python benchmarks/results/s34/gate_rows.py MODEL OUT.json data/eval-wild-cal data/eval-wild-cal-small
"""
import csv
import dataclasses
import importlib.util
import json
import sys
from multiprocessing import Pool
from pathlib import Path

from ccscore_export.resized_judge import POSITIVE_KINDS

# Session 33's rows (benchmarks/results/s33/joint_rows.py) read on a scorer of MODEL whose judge and network never flag.
_spec = importlib.util.spec_from_file_location("joint_rows", Path(__file__).parents[1] / "s33" / "joint_rows.py")
joint_rows = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(joint_rows)


def row_of(task):
    from ccscore import Scorer
    from ccscore.resized_appearance import ResizedAppearance
    from ccscore.resized_judge import ResizedJudge

    model, path, kind, label = task
    if joint_rows._scorer is None:
        scorer = Scorer(model, device="cpu", intra_op_threads=1)
        fitted = (scorer.info.name, scorer.info.version, scorer.model_digest)
        scorer.resized_judge = dataclasses.replace(ResizedJudge.bundled(), threshold=1.0, fitted_for=fitted)
        scorer.resized_appearance = dataclasses.replace(ResizedAppearance.bundled(), threshold=1.0, fitted_for=fitted)
        joint_rows._scorer = scorer
    return joint_rows.row_of((path, kind, label))


if __name__ == "__main__":
    model, out, roots = sys.argv[1], sys.argv[2], sys.argv[3:]
    tasks = []
    for root in roots:
        with open(Path(root) / "manifest.csv", newline="") as f:
            for r in csv.DictReader(f):
                if r["kind"] in POSITIVE_KINDS or r["label"] == "0":
                    tasks.append((model, str(Path(root) / r["path"]), r["kind"], int(r["kind"] in POSITIVE_KINDS)))
    with Pool(2) as pool:
        rows = [row for row in pool.map(row_of, tasks, chunksize=16) if row is not None]  # None: could not be read
    Path(out).write_text(json.dumps(rows))
    print(f"wrote {len(rows)} rows of {len(tasks)} images to {out}")
