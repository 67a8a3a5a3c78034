"""Would a stricter grid gate let the resized-damage judge and network find more JPEG then downscaled? (session 34; not
part of the package). A stricter gate leaves clean some art the head flagged (small grey and downscaled art: the clean
groups' room the judge and network need, session 33) and some lossy images; the judge and network, whose scores do not
depend on the gate (but for early stop's choice of tiles: below), are then asked about them. Simulated from:

- rows of the strictest gate tried (`gate_rows.py` with `regate.py`'s every center 0.5), which leaves the most images
  clean (but two of the report set's clean images) and so holds the judge's and network's scores of every image any gate below it leaves clean;
- every tile of each set scored once (`store_tiles.py`): per gate, the head's decision as the gate's calibration makes
  it (`calibrate.decisions`: early stop, table and decoder checks), which flags an image the strict rows leave clean.

Per gate and policy, the judge's and then the network's thresholds are chosen on the two calibration sets pooled by
their fits' rules (`resized_judge.choose_threshold_within_bars`: at most `--max-clean` of the still-clean images, every
clean group's bar kept, the judge with 4 images of each to spare; the network's THRESHOLD_SLACK), then applied to the
report set, where the judge is asked as the runtime asks it (also the network's JUDGE_MIN_APPEARANCE cut; its fit
chooses the threshold counting it asked on the lean alone). Checked at the shipped gate (its first block): both
thresholds as shipped (judge 0.9812, network 0.8188), the report set's JPEG then downscaled 111 of 120 as
benchmarks/results/s33/report.txt. Approximate: early stop works on the gated P(clean), so the strict gate can score
other tiles than a looser one and move the judge's inputs (the tiles' lean; the network's never): of the report set's
2,797 images clean under both the strict and the shipped gate, 510 get another judge probability (by up to 0.45).

    python benchmarks/results/s34/gate_joint.py /tmp/s34/rows-strict-cal.json /tmp/s34/rows-strict-report.json /tmp/s34
"""
import itertools
import json
import math
import pickle
import sys

import numpy as np

from ccscore import Scorer
from ccscore.scorer import APPEARANCE_MAX_TILE_CLEAN, JUDGE_MAX_TILE_CLEAN, JUDGE_MIN_APPEARANCE, GridGate
from ccscore_export.bars import CLEAN_GROUPS, LOSSY_GROUPS, NEW_CODEC_GROUPS
from ccscore_export.calibrate import decisions
from ccscore_export.resized_appearance import THRESHOLD_SLACK
from ccscore_export.resized_judge import choose_threshold_within_bars

ROOTS = {"cal": "data/eval-wild-cal", "calsmall": "data/eval-wild-cal-small", "report": "data/eval-wild"}
SHOWN_GROUPS = ("all clean kinds", "grey", "downscaled", "line art", "smaller than a tile")
JD_KINDS = ("jpeg_downscaled", "jpeg_grey_downscaled", "jpeg_lineart_downscaled")


def judge_scores(rows, fitting=False):
    """The judge's probability where it is asked, else 0: as the runtime asks (the network's JUDGE_MIN_APPEARANCE cut
    too), or with `fitting` as its fit counts it asked when it chooses the threshold (the lean alone)."""
    return np.array([r["p"] if (r["verdict"] == "clean" and r.get("p") is not None and r["lean"] <= JUDGE_MAX_TILE_CLEAN
                                and (fitting or r.get("s") is None or r["s"] >= JUDGE_MIN_APPEARANCE)) else 0.0
                     for r in rows])


def network_scores(rows, judged):
    return np.array([r["s"] if (not j and r["verdict"] == "clean" and r.get("s") is not None
                                and r["lean"] <= APPEARANCE_MAX_TILE_CLEAN) else 0.0 for r, j in zip(rows, judged)])


def thresholds(rows, judge_max_clean, network_max_clean, spare=4):
    clean = [k for k, r in enumerate(rows) if r["y"] == 0]
    judge = choose_threshold_within_bars([rows[k] for k in clean], judge_scores(rows, fitting=True)[clean],
                                         judge_max_clean, spare)
    judged = judge_scores(rows) > judge
    after = [{**r, "verdict": "jpeg" if j else r["verdict"]} for r, j in zip(rows, judged)]
    s = network_scores(rows, judged)
    network = choose_threshold_within_bars([after[k] for k in clean], s[clean], network_max_clean)
    return judge, (min(1.0, network + THRESHOLD_SLACK) if network < 1.0 else network)


def flagged(rows, judge, network):
    judged = judge_scores(rows) > judge
    return np.array([r["verdict"] != "clean" for r in rows]) | judged | (network_scores(rows, judged) > network)


def summary(rows, flags):
    before = np.array([r["verdict"] != "clean" for r in rows])
    parts = []
    for kind in JD_KINDS:
        members = np.array([r["kind"] == kind for r in rows])
        parts.append(f"{kind} {before[members].sum()}->{flags[members].sum()}/{members.sum()}")
    for name, kinds, bar in CLEAN_GROUPS:
        if name in SHOWN_GROUPS:
            members = np.array([r["y"] == 0 and (kinds is None or r["kind"] in kinds) for r in rows])
            parts.append(f"{name} {before[members].sum()}->{flags[members].sum()} (bar {math.floor(bar * members.sum())})")
    return "; ".join(parts)


def main():
    cal_rows, report_rows, tiles = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3]
    scorer = Scorer(halve_upscaled=False)
    shipped = scorer.grid_gate
    stored = {name: pickle.load(open(f"{tiles}/{name}.pkl", "rb")) for name in ROOTS}

    def run(centers, judge_max_clean=0.005, network_max_clean=0.002):
        gate = GridGate(shipped.periods, {**shipped.centers, **centers}, shipped.slope, shipped.weak)
        head, lines = {}, {}
        for name, root in ROOTS.items():
            decided = decisions(scorer, stored[name], gate)
            for (row, *_), (_, _, label) in zip(stored[name], decided):
                head[f"{root}/{row['path']}"] = label
            for line, kinds, least, _ in LOSSY_GROUPS + NEW_CODEC_GROUPS:
                group = [(label, pred) for kind, label, pred in decided if kind in kinds]
                if group and not math.isnan(least):
                    lines.setdefault(name, []).append(f"{line.split(' (')[0]} {sum(p != 'clean' for _, p in group)}"
                                                      f"/{sum(p == l for l, p in group)}/{len(group)}")
        assert all(r["path"] in head for r in cal_rows + report_rows), "rows of folders spelled as ROOTS only"
        cal, report = ([{**r, "verdict": r["verdict"] if r["verdict"] != "clean" else head[r["path"]]}
                        for r in rows] for rows in (cal_rows, report_rows))
        judge, network = thresholds(cal, judge_max_clean, network_max_clean)
        print(f"gate centers {json.dumps(gate.centers, sort_keys=True)}; --max-clean judge {judge_max_clean}, network "
              f"{network_max_clean}: thresholds judge {judge:.4f}, network {network:.4f}")
        print(f"  head's lossy lines (caught/named/images): calibration {'; '.join(lines['cal'])}")
        print(f"                                            report      {'; '.join(lines['report'])}")
        print(f"  calibration sets (head and rules -> with judge and network): {summary(cal, flagged(cal, judge, network))}")
        print(f"  report set: {summary(report, flagged(report, judge, network))}", flush=True)

    print("== the fits' --max-clean (judge 0.005 with 4 to spare, network 0.002), gates from the shipped one (avif 0.15, "
          "jpeg 0.1, webp 0.1, jxl 0) up")
    for avif, jpeg, webp in itertools.product((0.15, 0.25, 0.3, 0.4), (0.1, 0.2, 0.3, 0.4), (0.1, 0.3)):
        run({"avif": avif, "jpeg": jpeg, "webp": webp})
    print("\n== more clean room for the judge and network (--max-clean), three gates")
    for centers in ({}, {"avif": 0.3, "jpeg": 0.3}, {"avif": 0.3, "jpeg": 0.4}, {"avif": 0.4, "jpeg": 0.3, "webp": 0.3}):
        for judge_max_clean, network_max_clean in ((0.005, 0.004), (0.005, 0.008), (0.01, 0.002), (0.01, 0.008),
                                                   (0.02, 0.004)):
            run(centers, judge_max_clean, network_max_clean)


if __name__ == "__main__":
    main()
