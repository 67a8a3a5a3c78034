"""The report set's JPEG then downscaled images the shipped runtime leaves clean, with what the judge and the network
scored them, and the share caught by the image's shorter side (session 34; not part of the package), from the shipped
gate's rows:

    python benchmarks/results/s34/gate_rows.py models/ccscore-detector.onnx /tmp/s34/rows-base-report.json data/eval-wild
    python benchmarks/results/s34/misses.py /tmp/s34/rows-base-report.json data/eval-wild
"""
import csv
import json
import sys
from pathlib import Path

from PIL import Image

from ccscore.resized_appearance import ResizedAppearance
from ccscore.resized_judge import ResizedJudge
from ccscore.scorer import APPEARANCE_MAX_TILE_CLEAN, JUDGE_MAX_TILE_CLEAN, JUDGE_MIN_APPEARANCE

rows, root = json.load(open(sys.argv[1])), Path(sys.argv[2])
details = {str(root / r["path"]): r["detail"] for r in csv.DictReader(open(root / "manifest.csv", newline=""))}
judge, network = ResizedJudge.bundled().threshold, ResizedAppearance.bundled().threshold
print(f"shipped thresholds: judge {judge:.4f} (asked where lean <= {JUDGE_MAX_TILE_CLEAN} and the network scores "
      f">= {JUDGE_MIN_APPEARANCE}), network {network:.4f} (lean <= {APPEARANCE_MAX_TILE_CLEAN})")
missed, by_side = 0, {}
for r in rows:
    if r["kind"] != "jpeg_downscaled":
        continue
    width, height = Image.open(r["path"]).size
    side = next(band for band, least in (("512 px or more", 512), ("256-511 px", 256), ("128-255 px", 128),
                                         ("under 128 px", 0)) if min(width, height) >= least)
    by_side.setdefault(side, []).append(r["verdict"] != "clean")
    if r["verdict"] != "clean":
        continue
    p, s, lean = r.get("p"), r.get("s"), r.get("lean")
    asked_judge = p is not None and lean <= JUDGE_MAX_TILE_CLEAN and (s is None or s >= JUDGE_MIN_APPEARANCE)
    if (asked_judge and p > judge) or (s is not None and lean <= APPEARANCE_MAX_TILE_CLEAN and s > network):
        by_side[side][-1] = True
        continue
    missed += 1
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    print(f"{Path(r['path']).name:50} {width}x{height:<4} {details[r['path']]:34} evidence {r['evidence']:5} "
          f"lean {fmt(lean)} judge {fmt(p)}{'' if asked_judge else ' (not asked)'} network {fmt(s)}")
print(f"{missed} missed; caught by the shorter side: "
      + ", ".join(f"{side} {sum(caught)} of {len(caught)}" for side, caught in sorted(by_side.items())))
