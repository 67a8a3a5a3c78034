"""Positives found by candidate rankings of the images the shipped runtime leaves clean (session 33): the appearance
network's score alone (what lowering its threshold does), the judge's probability alone, weighted sums of their
logits, their maximum; at the thresholds that flag exactly N more still-clean images (group bars ignored), and at
the lowest threshold that keeps every clean group's bar (`resized_judge.within_bars`, on top of the runtime's own
flags; no --max-clean). With and without the runtime's lean gate for the network (APPEARANCE_MAX_TILE_CLEAN).

    python benchmarks/results/s33/joint_ranking.py CAL_ROWS.json CAL_SMALL_ROWS.json [--report REPORT_ROWS.json]

Then the same within the bars with the head's own flags (evidence grid or weak) in the grey and downscaled groups
left out, as if the head did not flag that art: what those flags cost the resized judgements' room.

The judge's ranking here ignores its own gates in the runtime (JUDGE_MAX_TILE_CLEAN, JUDGE_MIN_APPEARANCE): it is
the judge's probability as a ranking, not what lowering the judge's threshold alone would do. Without the lean gate,
rows with no score enter at a logit of -20.

With --report (the report set's rows, `joint_rows.py` on data/eval-wild), each weighting's within-the-bars threshold
(lean gate on), chosen on the calibration rows, is applied once to the report set: what it would add there.
"""
import argparse
import collections
import json

import numpy as np

from ccscore.scorer import APPEARANCE_MAX_TILE_CLEAN
from ccscore_export.bars import CLEAN_GROUPS
from ccscore_export.resized_judge import within_bars

EXTRA_CLEAN = (4, 8, 16, 32, 64)


def ranking(name, s, p):
    if name.startswith("max"):
        return np.maximum(s, p)
    a = 0.0 if name.startswith("s ") else 1.0 if name.startswith("p ") else float(name.split()[3])  # "0.80 s + 0.20 p"
    return (1 - a) * s + a * p


def lowest_within_bars(clean_rows, scores):
    """The lowest threshold at which the clean rows flagged (score above it) keep every group's bar, as
    `resized_judge.choose_threshold_within_bars` walks down (no --max-clean); inf where none does."""
    best = np.inf
    for t in sorted(set(scores[np.isfinite(scores)].tolist()), reverse=True):
        if not within_bars(clean_rows, scores > t):
            break
        best = t
    return best


def logits(values):
    v = np.array([np.nan if x is None else x for x in values], float)
    v = np.clip(v, 1e-7, 1 - 1e-7)
    return np.where(np.isnan(v), -20.0, np.log(v / (1 - v)))


parser = argparse.ArgumentParser()
parser.add_argument("cal", nargs="+")
parser.add_argument("--report", default=None)
args = parser.parse_args()
rows = [r for path in args.cal for r in json.load(open(path))]
y = np.array([r["y"] for r in rows])
still = np.array([r["verdict"] == "clean" for r in rows])
leans = np.array([r.get("lean", 1.0) <= APPEARANCE_MAX_TILE_CLEAN for r in rows])
s, p = logits([r.get("s") for r in rows]), logits([r.get("p") for r in rows])
found = int((~still & (y == 1)).sum())
print(f"{int(y.sum())} positives, {found} found by the runtime; still clean: {int((still & (y == 0)).sum())} clean "
      f"images, {int((still & (y == 1)).sum())} positives")
print("clean groups (flagged by the runtime / images, bar):")
for name, kinds, bar in CLEAN_GROUPS:
    if not np.isnan(bar):
        members = [r for r in rows if r["y"] == 0 and (kinds is None or r["kind"] in kinds)]
        print(f"  {name:25s} {sum(r['verdict'] != 'clean' for r in members):4d} / {len(members):5d}, bar "
              f"{int(np.floor(bar * len(members)))}")
rankings = {"s (network)": s, "p (judge)": p}
for a in (0.2, 0.35, 0.5):
    rankings[f"{1 - a:.2f} s + {a:.2f} p"] = (1 - a) * s + a * p
rankings["max(s, p)"] = np.maximum(s, p)
clean_rows = [r for r in rows if r["y"] == 0]
chosen = {}
for gated in (True, False):
    print("\nwith the lean gate" if gated else "\nwithout the lean gate")
    for name, z in rankings.items():
        z = np.where(still & (leans if gated else True), z, -np.inf)
        ranked = np.sort(z[(y == 0) & np.isfinite(z)])[::-1]
        at_n = []
        for n in EXTRA_CLEAN:
            t = ranked[n] if n < len(ranked) else -np.inf
            at_n.append(f"{n}: {found + int(((z > t) & (y == 1)).sum())}")
        zc = z[y == 0]
        best = lowest_within_bars(clean_rows, zc)
        if gated:
            chosen[name] = best
        extra = collections.Counter(r["kind"] for r, hit in zip(clean_rows, zc > best) if hit)
        print(f"  {name:16s} found at N more clean flagged {', '.join(at_n)} | within the bars: "
              f"{found + int(((z > best) & (y == 1)).sum())} ({sum(extra.values())} more clean: {dict(extra)})")

HEAD_BOUND_GROUPS = {name: kinds for name, kinds, _ in CLEAN_GROUPS if name in ("grey", "downscaled")}
head_flags = {k for k, r in enumerate(rows) if r["y"] == 0 and r["verdict"] != "clean" and r.get("evidence") in
              ("grid", "weak") and any(r["kind"] in kinds for kinds in HEAD_BOUND_GROUPS.values())}
if head_flags:
    kept = [k for k in range(len(rows)) if k not in head_flags]
    kept_clean = [rows[k] for k in kept if rows[k]["y"] == 0]
    print(f"\nwithin the bars, the head's own {len(head_flags)} flags in the grey and downscaled groups left out "
          f"(lean gate on):")
    for name in rankings:
        z = np.where(still & leans, ranking(name, s, p), -np.inf)[kept]
        zy = y[kept]
        best = lowest_within_bars(kept_clean, z[zy == 0])
        print(f"  {name:16s} {found + int(((z > best) & (zy == 1)).sum())} found, {int(((z > best) & (zy == 0)).sum())} "
              "more clean flagged")

if args.report:
    report = json.load(open(args.report))
    ry = np.array([r["y"] for r in report])
    rstill = np.array([r["verdict"] == "clean" for r in report])
    rleans = np.array([r.get("lean", 1.0) <= APPEARANCE_MAX_TILE_CLEAN for r in report])
    rs, rp = logits([r.get("s") for r in report]), logits([r.get("p") for r in report])
    print(f"\nthe report set ({args.report}), each weighting at its calibration threshold (lean gate on); "
          f"the runtime finds {int((~rstill & (ry == 1)).sum())} of {int(ry.sum())} positives:")
    for name, t in chosen.items():
        z = np.where(rstill & rleans, ranking(name, rs, rp), -np.inf)
        added = collections.Counter(r["kind"] for r, hit in zip(report, z > t) if hit)
        print(f"  {name:16s} threshold {t:.4f}: adds {dict(added)}")
