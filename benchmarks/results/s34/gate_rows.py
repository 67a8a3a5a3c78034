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
import json
import sys
from multiprocessing import Pool
from pathlib import Path

from ccscore_export.resized_judge import POSITIVE_KINDS

_scorer = None


def row_of(task):
    global _scorer
    from ccscore import Scorer
    from ccscore.resized_appearance import ResizedAppearance
    from ccscore.resized_judge import ResizedJudge
    from ccscore.scorer import TileReads

    model, path, kind, label = task
    if _scorer is None:
        _scorer = Scorer(model, device="cpu", intra_op_threads=1)
        fitted = (_scorer.info.name, _scorer.info.version, _scorer.model_digest)
        _scorer.resized_judge = dataclasses.replace(ResizedJudge.bundled(), threshold=1.0, fitted_for=fitted)
        _scorer.resized_appearance = dataclasses.replace(ResizedAppearance.bundled(), threshold=1.0,
                                                         fitted_for=fitted)
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


if __name__ == "__main__":
    model, out, roots = sys.argv[1], sys.argv[2], sys.argv[3:]
    tasks = []
    for root in roots:
        with open(Path(root) / "manifest.csv", newline="") as f:
            for r in csv.DictReader(f):
                if r["kind"] in POSITIVE_KINDS or r["label"] == "0":
                    tasks.append((model, str(Path(root) / r["path"]), r["kind"], int(r["kind"] in POSITIVE_KINDS)))
    with Pool(2) as pool:
        rows = pool.map(row_of, tasks, chunksize=16)
    Path(out).write_text(json.dumps(rows))
    print(f"wrote {len(rows)} rows to {out}")
