"""Positives found by candidate rankings of the images the shipped runtime leaves clean (session 33): the appearance
network's score alone (what lowering its threshold does), the judge's probability alone, weighted sums of their
logits, their maximum; at the thresholds that flag exactly N more still-clean images (group bars ignored), and at
the lowest threshold that keeps every clean group's bar (`resized_judge.within_bars`, on top of the runtime's own
flags; no --max-clean). With and without the runtime's lean gate for the network (APPEARANCE_MAX_TILE_CLEAN).

    python benchmarks/results/s33/joint_ranking.py CAL_ROWS.json CAL_SMALL_ROWS.json
"""
import collections
import json
import sys

import numpy as np

from ccscore.scorer import APPEARANCE_MAX_TILE_CLEAN
from ccscore_export.bars import CLEAN_GROUPS
from ccscore_export.resized_judge import within_bars

EXTRA_CLEAN = (4, 8, 16, 32, 64)


def logits(values):
    v = np.array([np.nan if x is None else x for x in values], float)
    v = np.clip(v, 1e-7, 1 - 1e-7)
    return np.where(np.isnan(v), -20.0, np.log(v / (1 - v)))


rows = [r for path in sys.argv[1:] for r in json.load(open(path))]
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
        best = np.inf
        for t in sorted(set(zc[np.isfinite(zc)].tolist()), reverse=True):
            if not within_bars(clean_rows, zc > t):
                break
            best = t
        extra = collections.Counter(r["kind"] for r, hit in zip(clean_rows, zc > best) if hit)
        print(f"  {name:16s} found at N more clean flagged {', '.join(at_n)} | within the bars: "
              f"{found + int(((z > best) & (y == 1)).sum())} ({sum(extra.values())} more clean: {dict(extra)})")
