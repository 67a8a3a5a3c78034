"""Chooses the grid gate (ccscore.scorer.GridGate) of an exported model on a calibration evaluation set.

The set is a folder with manifest.csv (path, label, quality, kind, ...), built from clean art that neither the
training nor the reported evaluation uses (`build-data --export-clean ... --exclude-from`). Every image's tiles
are scored once; each candidate gate is then applied to the stored outputs. The chosen gate is the one that
catches the most lossy images while all clean kinds together stay at or under `max_clean`, and each clean kind
at or under `max_kind` (ties: the stricter gate); with `--pool-groups`, issue #10's groups of clean kinds each at
or under the lower of their bar and `max_kind`, their kinds pooled as the issue measures them; with
`--lossy-lines`, only gates that hold issue #10's lossy lines (and #12's of the model's new codecs) with an image
to spare, the catch counted without resized damage. Each gated label gets its own center; images are judged as
scoring judges them, early stop and the runtime's table check included (ccscore.scorer.LATTICE_EVIDENCE: read from
the pixels once, on the tiles early stop would stop at and on all of them, since it does not depend on the gate).

    python -m ccscore_export.calibrate MODEL.onnx --cal-set data/eval-wild-cal [--json gate.json]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from ccscore import ImageError, Scorer
from ccscore.decoders import decoder_trace
from ccscore.scorer import CLEAN, GridGate, decide, invalid_rows, output_problem, pixels_read
from ccscore_export.bars import CLEAN_GROUPS, LOSSY_GROUPS, NEW_CODEC_GROUPS, RESIZED_GROUPS, TEXTURE_KINDS
from ccscore_export.labels import LABELS

# 0 and 0.05 joined when 0.6.2's head chose 0.1 for both labels, the lowest center then tried: a choice on the
# edge of the grid says the grid stops too early. (At center 0 a label keeps half its probability where its
# grid's votes agree no better than chance.)
CENTERS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
WEAK = (0.5, 0.55, 0.6, 0.7)
SLOPE = 20.0
MAX_GRID = 81  # up to this many center combinations per weak factor are all tried (two gated labels: 81)
ROUNDS = 2  # otherwise passes of a per-label search: a label's best center can shift once the others have moved


def score_tiles(scorer: Scorer, root: Path, rows: list[dict], log=print) -> list[tuple[dict, object, list, dict]]:
    """(manifest row, tile outputs, boxes, table check, colours) for every image that decodes, all tiles scored; the
    table check (Scorer.table_check) per count of tiles a judgement may stand on (early stop's first tiles, all);
    the colours' decoder trace (ccscore.decoders) for the decoder check.
    Images whose outputs are unusable (NaN, not summing to 1: see ccscore.scorer.output_problem) are reported and
    left out: they get an error record, never a decision, so no gate applies to them."""
    out = []
    for row in rows:
        try:
            tiles, _ = scorer.tile(root / row["path"])
        except ImageError:
            continue
        outputs = scorer.run(tiles.pixels)
        if invalid_rows(outputs).any():
            log(f"left out {row['path']}: {output_problem(outputs)}")
            continue
        counts = {len(outputs)} | ({min(scorer.early_stop.first_tiles, len(outputs))} if scorer.early_stop else set())
        lattice = {}
        for count in counts:
            used = outputs.rows(0, count)
            lattice[count] = scorer.table_check(used, scorer.judge(used, tiles.boxes[:count])[1], tiles)[0]
        out.append((row, outputs, tiles.boxes, lattice, decoder_trace(pixels_read(tiles))))
    return out


def decisions(scorer: Scorer, scored: list, gate: GridGate) -> list[tuple[str, str, str]]:
    """(kind, label name, decided label) of every stored image with `gate` in place, each judged as scoring
    judges it (early stop and table check included), from its stored outputs."""
    scorer.grid_gate = gate
    out = []
    for row, outputs, boxes, lattice, colours in scored:
        scores = scorer.judge_as_scored(outputs, boxes, lambda used, _: lattice[len(used)], colours)
        label = row["label"]
        out.append((row["kind"], LABELS[int(label)] if label.isdigit() else label,  # manifest codes, not the model's
                    decide(scores, scorer.threshold)))
    return out


def shares_by_kind(decided: list[tuple[str, str, str]]) -> dict[str, tuple[str, float]]:
    """kind -> (label name, share flagged) of `decisions`."""
    by_kind: dict[str, list[bool]] = {}
    labels: dict[str, str] = {}
    for kind, label, pred in decided:
        by_kind.setdefault(kind, []).append(pred != CLEAN)
        labels[kind] = label
    return {kind: (labels[kind], float(np.mean(flags))) for kind, flags in by_kind.items()}


def flagged_by_kind(scorer: Scorer, scored: list, gate: GridGate) -> dict[str, tuple[str, float]]:
    """kind -> (label name, share flagged) with `gate` in place (see `decisions`)."""
    return shares_by_kind(decisions(scorer, scored, gate))


def lossy_lines_short(decided: list[tuple[str, str, str]], labels: Sequence[str]) -> list[str]:
    """The lossy lines of issue #10 (ccscore_export.bars.LOSSY_GROUPS) and of issue #12's new codecs that have a
    label in `labels` (NEW_CODEC_GROUPS), for the groups the set has, that `decisions` do not hold with one image
    to spare: one more image missed, or named the wrong codec, would break them. A line held on the calibration
    set by its last image is a coin toss on another set of the same size."""
    short = []
    for name, kinds, least_caught, least_right in LOSSY_GROUPS + NEW_CODEC_GROUPS:
        group = [(label, pred) for kind, label, pred in decided if kind in kinds]
        if not group or math.isnan(least_caught) or group[0][0] not in labels:
            continue
        caught = sum(pred != CLEAN for _, pred in group)
        right = sum(pred == label for label, pred in group)
        if (caught - 1) / len(group) < least_caught or (not math.isnan(least_right)
                                                        and (right - 1) / len(group) < least_right):
            short.append(name)
    return short


def clean_units(rates: dict[str, tuple[str, float]], sizes: dict[str, int], max_kind: float,
                pool_groups: bool) -> list[tuple[str, float, float]]:
    """(name, flagged share, limit) of each unit of clean art a limit applies to: each clean kind at `max_kind`;
    with `pool_groups`, issue #10's groups with a bar instead (ccscore_export.bars.CLEAN_GROUPS: their kinds
    pooled, as the issue measures them) at the lower of the bar and `max_kind`, and the kinds outside them.
    Pooled, one image the calibration set mislabels (a decoded JPEG among the sources) weighs as it does in
    the bar, not 3 times as much."""
    clean = {kind: share for kind, (label, share) in rates.items() if label == CLEAN}
    units = []
    for name, kinds, bar in CLEAN_GROUPS if pool_groups else ():
        present = [kind for kind in kinds or () if kind in clean]
        if present and not math.isnan(bar):
            share = sum(clean.pop(kind) * sizes[kind] for kind in present) / sum(sizes[kind] for kind in present)
            units.append((name, share, min(bar, max_kind)))
    return units + [(kind, share, max_kind) for kind, share in clean.items()]


def choose_gate(scorer: Scorer, scored: list, periods: dict, max_clean: float, max_kind: float,
                log=print, pool_groups: bool = False, lossy_lines: bool = False) -> dict:
    """Per weak factor, every combination of the gated labels' centers (or, past MAX_GRID combinations, a
    search over each label's center in turn, ROUNDS passes from the strictest): the gate that catches the most
    lossy images within the clean limits (`clean_units`); ties go to the stricter one (higher centers, then
    lower weak). With `lossy_lines`, only gates that hold the lossy lines with an image to spare
    (`lossy_lines_short`), and damage resized after compression (ccscore_export.bars.RESIZED_GROUPS) left out
    of the catch: the gate cannot see it, and lowering a center to catch some of it spends the clean limits
    that the lines need."""
    resized = {kind for _, kinds, _, _ in RESIZED_GROUPS for kind in kinds} if lossy_lines else set()
    tried: dict = {}
    sizes: dict[str, int] = {}
    for row, *_ in scored:
        sizes[row["kind"]] = sizes.get(row["kind"], 0) + 1

    def rate(centers: dict, weak: float):
        key = (tuple(sorted(centers.items())), weak)
        if key not in tried:
            gate = GridGate(periods, dict(centers), SLOPE, weak)
            decided = decisions(scorer, scored, gate)
            rates = shares_by_kind(decided)
            short = lossy_lines_short(decided, scorer.labels) if lossy_lines else []
            clean = [r for label, r in rates.values() if label == CLEAN]
            lossy = [r for kind, (label, r) in rates.items() if label != CLEAN and kind not in resized]
            units = clean_units(rates, sizes, max_kind, pool_groups)
            worst = max(units, key=lambda unit: unit[1] - unit[2])
            within = np.mean(clean) <= max_clean and all(share <= limit for _, share, limit in units)
            ok = within and not short
            shown = " ".join(f"{label} {c:.2f}" for label, c in sorted(centers.items()))
            log(f"centers {shown}, weak {weak:.2f}: clean kinds flagged {100 * np.mean(clean):.2f}% "
                f"(nearest its limit: {worst[0]} {100 * worst[1]:.1f}%), lossy kinds caught {100 * np.mean(lossy):.2f}%"
                f"{'' if ok else '  (over the clean limits)' if not short else '  (short: ' + ', '.join(short) + ')'}")
            tried[key] = (ok, (float(np.mean(lossy)), sum(centers.values()), -weak), gate, within, len(short))
        return tried[key]

    labels = sorted(periods)
    best = None
    for weak in WEAK:
        if len(CENTERS) ** len(labels) <= MAX_GRID:  # every combination: a search label by label can stall
            candidates = [dict(zip(labels, combo)) for combo in itertools.product(CENTERS, repeat=len(labels))]
        else:
            centers = {label: max(CENTERS) for label in labels}
            for _ in range(ROUNDS):
                for label in labels:
                    options = [(rate({**centers, label: c}, weak), c) for c in CENTERS]
                    good = [(key, c) for (ok, key, *_), c in options if ok]
                    # No center holds every line (each may wait on another label's center): the highest that,
                    # within the clean limits, holds the most, so the search moves without spending them.
                    nearer = [((-short, c), c) for (_, _, _, within, short), c in options if within]
                    if good:
                        centers[label] = max(good)[1]
                    elif lossy_lines and nearer:
                        centers[label] = max(nearer)[1]
            candidates = [centers]
        for centers in candidates:
            ok, key, gate, *_ = rate(centers, weak)
            if ok and (best is None or key > best[0]):
                best = (key, gate)
    if best is None:
        raise SystemExit("no candidate gate keeps clean images within the limits")
    for label, center in best[1].centers.items():
        if center == min(CENTERS):
            log(f"note: {label}'s chosen center {center} is the lowest tried: a lower one might catch more")
    return best[1].metadata()


def parse_periods(text: str) -> dict[str, int]:
    """"jpeg=8,webp=4" -> {"jpeg": 8, "webp": 4}."""
    try:
        return {label.strip(): int(n) for label, n in (part.split("=") for part in text.split(","))}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LABEL=N,..., got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--cal-set", type=Path, required=True)
    parser.add_argument("--max-clean", type=float, default=0.01, help="all clean kinds together (default 1%%)")
    parser.add_argument("--max-kind", type=float, default=0.03, help="any one clean kind (default 3%%)")
    parser.add_argument("--pool-groups", action="store_true",
                        help="limit issue #10's groups of clean kinds (pooled) to their bars, at most --max-kind, "
                             "instead of each of their kinds to --max-kind")
    parser.add_argument("--lossy-lines", action="store_true",
                        help="only gates that hold issue #10's lossy lines, and #12's for the model's new codecs, "
                             "with one image to spare; catch counted without damage resized after compression")
    parser.add_argument("--limit-textures", action="store_true",
                        help="also limit the clean texture kinds (ccscore_export.bars.TEXTURE_KINDS) at --max-kind; "
                             "by default they are left out of the calibration")
    parser.add_argument("--json", type=Path, help="write the chosen gate here (for `export --grid-gate`)")
    parser.add_argument("--periods", type=parse_periods, default=None, metavar="LABEL=N,...",
                        help="the lossy labels to gate and the grid each stands on (e.g. jpeg=8,webp=4,jxl=8); "
                             "default: the model's")
    args = parser.parse_args(argv)
    # With the model's early stop: images are judged as scoring judges them. Not halved: the gate is chosen on
    # native-scale judgements (the runtime's halved judgement of images that look upscaled comes after it).
    scorer = Scorer(args.model, halve_upscaled=False)
    if scorer.grid_gate is None:
        parser.error(f"{args.model} has no phases output and grid gate to calibrate")
    rows = [row for row in csv.DictReader(open(args.cal_set / "manifest.csv", newline=""))
            if args.limit_textures or row["kind"] not in TEXTURE_KINDS]
    scored = score_tiles(scorer, args.cal_set, rows)
    print(f"scored {len(scored)} calibration images")
    periods = args.periods or scorer.grid_gate.periods
    unknown = {label for label in periods if label not in scorer.labels or label == CLEAN}
    if unknown or not set(periods.values()) <= set(scorer.info.phase_grids):
        parser.error(f"--periods must map lossy labels of {list(scorer.labels)} to grids of "
                     f"{list(scorer.info.phase_grids)}")
    gate = choose_gate(scorer, scored, periods, args.max_clean, args.max_kind, pool_groups=args.pool_groups,
                       lossy_lines=args.lossy_lines)
    print(f"chosen: {json.dumps(gate)}")
    if args.json:
        args.json.write_text(json.dumps(gate))
    return 0


if __name__ == "__main__":
    sys.exit(main())
