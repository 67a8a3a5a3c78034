"""Rows for a joint judge-and-network rule (session 33): for every JPEG-then-downscaled positive and clean image of
calibration folders, the shipped runtime's verdict and evidence word and, where it leaves the image clean (no other
codec proven, with tiles), the appearance network's score (`s`), the resized-damage judge's probability (`p`) and the
tiles' mean P(clean) before the gate (`lean`). Not part of the package.

    python benchmarks/results/s33/joint_rows.py ROWS.json data/eval-wild-cal [data/eval-wild-cal-small ...]
"""
import csv
import json
import sys
from multiprocessing import Pool
from pathlib import Path

from ccscore_export.resized_judge import POSITIVE_KINDS

_scorer = None


def row_of(task):
    global _scorer
    from ccscore import Scorer
    from ccscore.scorer import TileReads

    path, kind, label = task
    if _scorer is None:
        _scorer = Scorer(device="cpu", intra_op_threads=1)
    try:
        tiles, size = _scorer.tile(path, cut_on_read=True)
        result = _scorer.score_together([(path, tiles, size)])[0]
        row = {"path": path, "kind": kind, "y": label, "verdict": result.label, "evidence": result.evidence.word}
        if result.label == "clean" and _scorer._may_judge(result) and not result.flagged:
            reads = TileReads(tiles)
            score = _scorer.resized_appearance.score_image(reads.own, tiles.whole)
            values = _scorer._resized_inputs(reads, size, result)
            row.update(s=None if score is None else float(score),
                       p=None if values is None else float(_scorer.resized_judge.probability(values)),
                       lean=float(_scorer._mean_tile_clean(result)))
        return row
    except Exception as exc:  # one unreadable image must not end the read
        print(f"{path}: {exc}", flush=True)
        return None


if __name__ == "__main__":
    out, roots = sys.argv[1], sys.argv[2:]
    tasks = []
    for root in roots:
        with open(Path(root) / "manifest.csv", newline="") as f:
            for r in csv.DictReader(f):
                if r["kind"] in POSITIVE_KINDS or r["label"] == "0":
                    tasks.append((str(Path(root) / r["path"]), r["kind"], int(r["kind"] in POSITIVE_KINDS)))
    with Pool(2) as pool:
        rows = [r for r in pool.imap(row_of, tasks, chunksize=16) if r is not None]
    Path(out).write_text(json.dumps(rows))
    print(f"wrote {len(rows)} rows of {len(tasks)} images to {out}")
