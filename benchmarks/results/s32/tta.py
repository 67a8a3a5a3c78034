"""A network JSON's calibration found/flagged with its cells' logits averaged over flips/transposes (test-time
augmentation), scored and pooled by the runtime's own `ResizedAppearance.score_cells` (only `logits` replaced).

    python tta.py NETWORK.json MODES [ROWS_OUT.json]   # MODES: id, or id,t, or id,t,fx,fy"""
import json, sys
from pathlib import Path
import numpy as np
from ccscore.resized_appearance import ResizedAppearance
from ccscore_export import resized_appearance as ra
from common import calibration_rows, reader

TRANSFORMS = {"id": lambda c: c, "t": lambda c: c.transpose(0, 2, 1, 3), "fx": lambda c: c[:, :, ::-1],
              "fy": lambda c: c[:, ::-1]}
MODES = sys.argv[2].split(",")


class Averaged(ResizedAppearance):
    def logits(self, cells):
        return np.mean([super(Averaged, self).logits(np.ascontiguousarray(TRANSFORMS[m](cells))) for m in MODES],
                       axis=0)


net = Averaged.from_spec({**json.load(open(sys.argv[1])), "threshold": 1.0})
cal = calibration_rows(reader())
scores = [net.score_cells(r["cells"], r.get("whole_cells")) if r["asked"] else None for r in cal]  # unasked: 0
threshold, scores, summary = ra.calibrate(np.array([np.nan if v is None else v for v in scores]), cal, 0.002)
print(sys.argv[1:], summary)
if len(sys.argv) > 3:
    ra.write_rows(Path(sys.argv[3]), cal, scores)
