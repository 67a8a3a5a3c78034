"""Networks' calibration rows (`exp.py`'s ROWS.rows.json or the fit's --rows): positives found by each at its own
threshold (the fit's rule) and at thresholds flagging exactly N still-clean calibration images, group bars ignored (how
well each ranks, apart from which clean image happens to bind a bar)."""
import json, sys
import numpy as np
from ccscore_export.resized_appearance import THRESHOLD_SLACK
from ccscore_export.resized_judge import choose_threshold_within_bars

for path in sys.argv[1:]:
    rows = json.load(open(path))
    s = np.array([r["score"] if r["asked"] else 0.0 for r in rows])
    clean = [k for k, r in enumerate(rows) if r["y"] == 0]
    t = choose_threshold_within_bars([rows[k] for k in clean], s[clean], 0.002)
    t = min(1.0, t + THRESHOLD_SLACK) if t < 1.0 else t  # as the fit
    still = np.sort(s[[k for k in clean if rows[k]["verdict"] == "clean"]])[::-1]
    pos = [k for k, r in enumerate(rows) if r["y"] == 1]
    caught = lambda th: sum(1 for k in pos if rows[k]["verdict"] != "clean" or s[k] > th)
    at = {n: caught(still[n]) for n in (8, 16, 32, 64)}
    print(f"{path}: own threshold {t:.4f} found {caught(t)}; at N clean flagged (bars ignored): {at}")
