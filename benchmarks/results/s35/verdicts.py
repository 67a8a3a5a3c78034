"""Each image's verdict (label and size) of the given kinds of evaluation sets, by the shipped runtime or by v0.5.0's
(the model and runtime issue #12's held-out figures were measured with: a worktree of commit b455447, whose runtime
calls a blank image "jpeg", quality ~91, as the held-out evaluation says). Session 35; not part of the package. About
2 minutes a model for the report set's and the large-art set's five #12 kinds, on 2 cores.

    git worktree add /tmp/v050 b455447
    python benchmarks/results/s35/verdicts.py data/eval-wild,data/eval-wild-large3-nocal KINDS OUT.json [/tmp/v050]
"""
import csv
import json
import sys
from multiprocessing import Pool

roots, kinds, out = sys.argv[1].split(","), set(sys.argv[2].split(",")), sys.argv[3]
OLD = sys.argv[4] if len(sys.argv) > 4 else None
if OLD:  # v0.5.0's runtime and model in place of the installed ones
    sys.path.insert(0, f"{OLD}/runtime")
import ccscore  # noqa: E402
from ccscore import Scorer  # noqa: E402

assert not OLD or ccscore.__file__.startswith(OLD), f"v0.5.0's runtime not loaded: {ccscore.__file__}"
_scorer = None


def verdict(task):
    global _scorer
    if _scorer is None:
        _scorer = Scorer(f"{OLD}/models/ccscore-detector.onnx" if OLD else None, device="cpu", intra_op_threads=1)
    path, kind, detail = task
    try:
        result = _scorer.score(path)
        return {"path": path, "kind": kind, "detail": detail, "label": result.label, "size": list(result.size)}
    except Exception as exc:  # an unreadable image is counted as such, not as a verdict
        return {"path": path, "kind": kind, "detail": detail, "label": "error", "error": str(exc)}


if __name__ == "__main__":
    tasks = []
    for root in roots:
        with open(f"{root}/manifest.csv", newline="") as f:
            tasks += [(f"{root}/{r['path']}", r["kind"], r["detail"]) for r in csv.DictReader(f) if r["kind"] in kinds]
    with Pool(2) as pool:
        rows = pool.map(verdict, tasks, chunksize=8)
    with open(out, "w") as f:
        json.dump(rows, f)
    print(f"{len(rows)} verdicts ({sum(r['label'] == 'error' for r in rows)} unreadable) to {out}")
