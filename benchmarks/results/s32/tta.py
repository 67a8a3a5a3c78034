"""A network JSON's calibration found/flagged with its cells' logits averaged over flips/transposes (test-time
augmentation), pooled as the runtime pools (ResizedAppearance.pooled, higher of tiles' and whole cells' scores).

    python tta.py NETWORK.json MODES [ROWS_OUT.json]   # MODES: id, or id,t, or id,t,fx,fy"""
import json, sys
from pathlib import Path
import numpy as np
from ccscore import Scorer
from ccscore.resized_appearance import ResizedAppearance
from ccscore_export.resized_judge import reader_digest
from ccscore_export import resized_appearance as ra

spec = json.load(open(sys.argv[1]))
modes = sys.argv[2].split(",")  # e.g. id  or id,t  or id,t,fx,fy
net = ResizedAppearance.from_spec({**spec, "threshold": 1.0})
reader = reader_digest(Scorer(device="cpu", judge_appearance=False).model_digest)
cal = [r for root in ["data/eval-wild-cal", "data/eval-wild-cal-small"]
       for r in ra.collect_cached(Path(root), True, Path("data/judge/cells"), reader, 2)]
T = {"id": lambda c: c, "t": lambda c: c.transpose(0, 2, 1, 3), "fx": lambda c: c[:, :, ::-1],
     "fy": lambda c: c[:, ::-1]}
def score(cells):
    if cells is None or not len(cells):
        return None
    logits = np.mean([net.logits(np.ascontiguousarray(T[m](cells))) for m in modes], axis=0)
    return net.pooled(logits)
out = []
for r in cal:
    if not r["asked"]:
        out.append(np.nan); continue
    a, b = score(r["cells"]), score(r.get("whole_cells"))
    s = [v for v in (a, b) if v is not None]
    out.append(max(s) if s else np.nan)
threshold, scores, summary = ra.calibrate(np.array(out), cal, 0.002)
print(sys.argv[1:], summary)
if len(sys.argv) > 3:
    Path(sys.argv[3]).write_text(json.dumps([{**{k: v for k, v in r.items() if k not in ra.CELL_ARRAYS},
                                              "score": float(v)} for r, v in zip(cal, scores)]))
