"""Two appearance networks' calibration rows (`--rows`, same calibration sets): what each, and their mean logit, min and
max, find under the fit's own threshold rule (`choose_threshold_within_bars`, --max-clean 0.002)."""
import json, sys, numpy as np
from ccscore_export.resized_judge import choose_threshold_within_bars, POSITIVE_KINDS
first = {r['path']: r for r in json.load(open(sys.argv[1]))}
rows = json.load(open(sys.argv[2]))
sa = np.array([first[r['path']]['score'] for r in rows]); sb = np.array([r['score'] for r in rows])
asked = np.array([r['asked'] for r in rows])
def lg(p): p = np.clip(p, 1e-7, 1 - 1e-7); return np.log(p / (1 - p))
def found(name, s):
    s = np.where(asked, s, 0.0)
    clean = [k for k, r in enumerate(rows) if r['y'] == 0]
    t = choose_threshold_within_bars([rows[k] for k in clean], s[clean], 0.002)
    f = [sum(1 for k, r in enumerate(rows) if r['kind'] == kind and (r['verdict'] != 'clean' or s[k] > t))
         for kind in POSITIVE_KINDS]
    flagged = sum(1 for k in clean if rows[k]['verdict'] == 'clean' and s[k] > t)
    print(name, f"threshold {t:.4f}", f, sum(f), "clean flagged", flagged)
found("first", sa); found("second", sb)
found("mean logit", 1 / (1 + np.exp(-(lg(sa) + lg(sb)) / 2)))
found("min", np.minimum(sa, sb)); found("max", np.maximum(sa, sb))
