"""Accuracy of a ccscore model on an evaluation set: tables by codec x quality band, by kind, by the groups of
clean art found in the wild (issue #10), a reliability table, confusion matrix, AUROC, false positives, quality
error, and the detector issues' bars line by line.

An evaluation set is a folder with `manifest.csv` (path, label, quality, kind, source), as written by
`ccscore-export build-data --eval-from CLEAN_DIR --out EVAL_DIR` from any folder of clean lossless art.
Real lossy files from the wild (re-saved as PNG; every one should be flagged) come with --real-lossy.

    python benchmarks/accuracy.py --eval-set data/eval-val [--real-lossy DIR] [--model M.onnx] [--json out.json]
    python benchmarks/accuracy.py --clean-dir DIR --eval-set data/eval-heldout   # builds the set first

Scores with the torch-free runtime and its defaults, exactly as users get them.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from ccscore import ImageError, Scorer
from ccscore_export.bars import (CLEAN_GROUPS, LOSSY_GROUPS, NEW_CODEC_GROUPS, PALETTE_KINDS,  # issues #10, #12
                                 RESIZED_GROUPS, WILD_JPEG_KINDS)
from ccscore_export.labels import LABELS  # manifest label codes: LABELS[i]
from ccscore_export.metrics import auroc

BANDS = ((0, 80, "<=80"), (81, 90, "81-90"), (91, 95, "91-95"), (96, 100, "96-100"))
# The lossy kinds of issue #10's wild set (build.EVAL_VARIANTS). The earlier bar (bands, AUROC, codec right,
# quality error) is measured without them, so its numbers stay comparable with older sets.
WILD_POSITIVE_KINDS = WILD_JPEG_KINDS + ("jpeg_grey", "jpeg_lineart", "jpeg_manga", "jpeg_small", "webp_cwebp",
                                         "webp_grey")
# Issue #12's kinds (AVIF, JPEG XL, JPEG / WebP resized after compression): measured by kind and by their own
# bar only, so the earlier bars' numbers stay comparable with older sets.
CODEC_KINDS = ("avif_avifenc", "avif_pillow", "jxl_cjxl", "jpeg_downscaled", "jpeg_upscaled_x2", "webp_downscaled",
               "jpeg_upscaled_other", "jpeg_grey_downscaled", "jpeg_lineart_downscaled")
# Resized-after-compression images are reported by kind only: the quality bands measure the codec alone.
BAND_EXCLUDED_KINDS = ("resize",) + WILD_POSITIVE_KINDS + CODEC_KINDS
# Kinds the detector issue's (#7) summary figures leave out (AUROC, codec right, quality error).
LATER_KINDS = WILD_POSITIVE_KINDS + CODEC_KINDS
FLAT_KIND = "flat"  # bar: every one labelled clean, with "no evidence"
CODEC_GROUPS = NEW_CODEC_GROUPS + RESIZED_GROUPS  # issue #12's
RELIABILITY_BINS = (0.0, 0.02, 0.1, 0.3, 0.5, 0.7, 0.9, 0.98, 1.0)
# Issue #11: quality error by encoder family. A missed image (no quality: labelled clean) counts as an error of
# MISSED_ERROR. Standard-table encoders (IJG tables scaled by quality) carry the bar; the others are shown.
MISSED_ERROR = 100.0
QUALITY_BANDS = ((0, 80, "<=80"), (81, 90, "81-90"), (91, 95, "91-95"))
STANDARD_TABLE_KINDS = ("jpeg_cjpeg", "jpeg_imagemagick", "jpeg_graphicsmagick", "jpeg_pillow", "jpeg_grey",
                        "jpeg_q50", "jpeg_q70", "jpeg_q85", "jpeg_q90", "jpeg_q95")
QUALITY_FAMILIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("standard tables, all (bar)", STANDARD_TABLE_KINDS),
    ("cjpeg (libjpeg-turbo)", ("jpeg_cjpeg",)),
    ("ImageMagick", ("jpeg_imagemagick",)),
    ("GraphicsMagick", ("jpeg_graphicsmagick",)),
    ("Pillow", ("jpeg_pillow", "jpeg_q50", "jpeg_q70", "jpeg_q85", "jpeg_q90", "jpeg_q95")),
    ("grey JPEG", ("jpeg_grey",)),
    ("jpegli (custom tables)", ("jpeg_jpegli",)),
    ("mozjpeg (custom tables)", ("jpeg_mozjpeg_q80",)),
    ("random encoder q85", ("jpeg_other_q85",)),
    ("line art / manga, random encoders", ("jpeg_lineart", "jpeg_manga")),
    ("JPEG then resized by 0.95", ("resize",)),
    ("JPEG then downscaled", ("jpeg_downscaled",)),
    ("JPEG then upscaled x2", ("jpeg_upscaled_x2",)),
    ("JPEG then upscaled x1.25-4", ("jpeg_upscaled_other",)),
    ("JPEG saved again at 90", ("double",)),
)
WEBP_QUALITY_KINDS = ("webp_cwebp", "webp_grey", "webp_q50", "webp_q75", "webp_q90", "webp_q95")
QUALITY_BAR = {"<=80": 1.5, "81-90": 1.0, "91-95": 1.0}
WEBP_QUALITY_BAR = 5.0


def label_name(label: str) -> str:
    """A manifest's label (an index into LABELS, or a name) as a name; indices past LABELS (codecs this
    benchmark does not know, e.g. a newer set's AVIF) become "label<n>"."""
    if not label.isdigit():
        return label
    return LABELS[int(label)] if int(label) < len(LABELS) else f"label{label}"


def band_of(quality: float) -> str:
    for lo, hi, name in BANDS:
        if lo <= quality <= hi:
            return name
    return "?"


def score_folder(scorer: Scorer, root: Path, rows: list[dict]) -> list[dict]:
    out = []
    for row in rows:
        try:
            result = scorer.score(root / row["path"])
        except ImageError as exc:
            print(f"skipped: {exc}", file=sys.stderr)
            continue
        out.append({**row, "pred": result.label, "p_clean": result.scores.get("clean", float("nan")),
                    "pred_quality": result.quality, "quality_source": result.quality_source,
                    "tiles_scored": len(result.tiles),
                    # None for models without grid evidence (no phases output)
                    "evidence": result.evidence.word if result.evidence is not None else None})
    return out


_WORKER_SCORER: Scorer | None = None


def _start_worker(scorer_options: dict) -> None:
    global _WORKER_SCORER
    _WORKER_SCORER = Scorer(**scorer_options, intra_op_threads=1)


def _score_chunk(task: tuple[Path, list[dict]]) -> list[dict]:
    return score_folder(_WORKER_SCORER, *task)


def score_folder_parallel(scorer_options: dict, root: Path, rows: list[dict], workers: int) -> list[dict]:
    """score_folder in `workers` processes (each its own one-thread Scorer); the same records, in order."""
    from multiprocessing import Pool

    chunks = [(root, rows[i : i + 32]) for i in range(0, len(rows), 32)]
    with Pool(workers, initializer=_start_worker, initargs=(scorer_options,)) as pool:
        return [record for part in pool.imap(_score_chunk, chunks) for record in part]


def pct(num: int, den: int) -> str:
    return f"{100 * num / den:5.1f}%" if den else "   - "


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(x).ljust(w) for x, w in zip(r, widths)))


def evaluate(records: list[dict], real: list[dict]) -> dict:
    label = np.array([label_name(r["label"]) for r in records])
    kind = np.array([r["kind"] for r in records])
    quality = np.array([float(r["quality"]) if r["quality"] not in ("", None) else math.nan for r in records])
    pred = np.array([r["pred"] for r in records])
    p_lossy = 1 - np.array([r["p_clean"] for r in records])
    pred_q = np.array([r["pred_quality"] if r["pred_quality"] is not None else math.nan for r in records])
    flagged = pred != "clean"
    lossy = label != "clean"
    summary: dict = {"n": len(records)}

    band_rows = []
    for codec in ("jpeg", "webp"):
        for lo, hi, name in BANDS:
            m = (label == codec) & (quality >= lo) & (quality <= hi) & ~np.isin(kind, BAND_EXCLUDED_KINDS)
            if not m.any():
                continue
            caught = flagged & m
            right = caught & (pred == codec)
            err = np.abs(pred_q[m & ~np.isnan(pred_q)] - quality[m & ~np.isnan(pred_q)])
            band_rows.append([codec, name, str(int(m.sum())), pct(int(caught.sum()), int(m.sum())),
                              pct(int(right.sum()), int(caught.sum())), f"{err.mean():.1f}" if len(err) else "-"])
            summary[f"caught_{codec}_{name}"] = float(caught.sum() / m.sum())
    print_table("Caught by codec x quality band (caught = flagged; codec right = of the caught; "
                f"kinds {', '.join(BAND_EXCLUDED_KINDS)} only by kind)",
                ["codec", "quality", "n", "caught", "codec right", "quality MAE"], band_rows)

    kind_rows = []
    for k in sorted(set(kind), key=lambda k: (label[kind == k][0] != "clean", k)):
        m = kind == k
        right = pct(int((flagged & m & (pred == label)).sum()), int((flagged & m).sum())) if label[m][0] != "clean" else "-"
        kind_rows.append([k, label[m][0], str(int(m.sum())), pct(int((flagged & m).sum()), int(m.sum())), right])
        summary[f"flagged_{k}"] = float((flagged & m).sum() / m.sum())
    print_table("By kind (flagged share; for clean kinds this is the false-positive rate)",
                ["kind", "label", "n", "flagged", "codec right"], kind_rows)

    group_rows = []
    for name, kinds, bar in CLEAN_GROUPS:
        m = (~lossy) if kinds is None else np.isin(kind, kinds)
        if not m.any():
            continue
        summary[f"flagged_group_{name}"] = float(flagged[m].mean())
        group_rows.append([name, str(int(m.sum())), pct(int((flagged & m).sum()), int(m.sum())),
                           "-" if math.isnan(bar) else f"<= {100 * bar:g}%"])
    flat = kind == FLAT_KIND
    if flat.any():
        no_evidence = np.array([r["evidence"] == "none" for r in records])
        known = np.array([r["evidence"] is not None for r in records])
        summary["flat_labelled_clean"] = float((~flagged[flat]).mean())
        summary["flat_no_evidence"] = float(no_evidence[flat].mean()) if known[flat].all() else math.nan
        group_rows.append(["flat: labelled clean", str(int(flat.sum())), pct(int((~flagged & flat).sum()), int(flat.sum())), "100%"])
        group_rows.append(["flat: \"no evidence\"", str(int(flat.sum())),
                           pct(int((no_evidence & flat).sum()), int(flat.sum())) if known[flat].all() else "not reported", "100%"])
    for name, kinds, least_caught, least_right in LOSSY_GROUPS + CODEC_GROUPS:
        m = np.isin(kind, kinds)
        if not m.any():
            continue
        right = m & (pred == label)
        summary[f"caught_group_{name}"] = float(flagged[m].mean())
        summary[f"codec_right_group_{name}"] = float(right.sum() / m.sum())
        bar = "-" if math.isnan(least_caught) else f">= {100 * least_caught:g}%"
        if not math.isnan(least_right):
            bar += f", codec right >= {100 * least_right:g}%"
        group_rows.append([f"{name} (caught; codec right of all)", str(int(m.sum())),
                           f"{pct(int((flagged & m).sum()), int(m.sum()))}; {pct(int(right.sum()), int(m.sum()))}", bar])
    if group_rows:
        print_table("Wild groups (issues #10, #12): clean groups flagged share, lossy groups caught share",
                    ["group", "n", "flagged / caught", "bar"], group_rows)

    print_table("Reliability (P(lossy) = 1 - P(clean), binned; observed = share of the bin that is lossy)",
                ["P(lossy) bin", "n", "mean P(lossy)", "observed lossy"], reliability_rows(p_lossy, lossy))

    # Rows: the labels the set holds; columns: those the model gave (a 3-label model on AVIF files: their rows).
    truths = [t for t in LABELS if (label == t).any()] + sorted(set(label) - set(LABELS))
    preds = [p for p in LABELS if (pred == p).any()] + sorted(set(pred) - set(LABELS))
    conf_rows = [[t] + [str(int(((label == t) & (pred == p)).sum())) for p in preds] for t in truths]
    print_table("Confusion matrix (rows: truth, columns: predicted)", ["truth"] + preds, conf_rows)

    plain_clean = kind == "clean"
    target = lossy & (quality <= 90) & ~np.isin(kind, LATER_KINDS)
    summary["auroc_clean_vs_lossy_q90"] = auroc(p_lossy[plain_clean | target], target[plain_clean | target])
    summary["auroc_all_negatives_vs_all_lossy"] = auroc(p_lossy, lossy)
    summary["fpr_clean"] = float(flagged[plain_clean].mean()) if plain_clean.any() else math.nan
    palette = np.isin(kind, PALETTE_KINDS)
    summary["fpr_palette"] = float(flagged[palette].mean()) if palette.any() else math.nan
    detected = flagged & lossy & ~np.isin(kind, LATER_KINDS)
    summary["codec_right_of_detected"] = float((pred[detected] == label[detected]).mean()) if detected.any() else math.nan
    shifted = np.isin(kind, ("grid_shift", "webp_grid_shift", "double", "double_jpeg_webp"))
    summary["caught_shifted_or_double"] = float(flagged[shifted].mean()) if shifted.any() else math.nan
    mae_mask = (label == "jpeg") & (quality >= 30) & (quality <= 95) & ~np.isnan(pred_q) & ~np.isin(kind, LATER_KINDS)
    summary["jpeg_quality_mae_30_95"] = float(np.abs(pred_q[mae_mask] - quality[mae_mask]).mean()) if mae_mask.any() else math.nan
    summary.update(quality_tables(records, kind, quality, pred_q))
    if real:
        summary["real_lossy_flagged"] = f"{sum(r['pred'] != 'clean' for r in real)}/{len(real)}"
    summary["tiles_scored_per_image"] = float(np.mean([r["tiles_scored"] for r in records]))
    print_table("Summary", ["metric", "value"], [[k, f"{v:.4f}" if isinstance(v, float) else str(v)]
                                                  for k, v in summary.items() if not k.startswith(("caught_", "flagged_", "codec_right_group_"))])
    return summary


def quality_error(pred_q: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """|estimate - truth| per image, MISSED_ERROR where there is no estimate."""
    return np.where(np.isnan(pred_q), MISSED_ERROR, np.abs(pred_q - quality))


def quality_tables(records: list[dict], kind: np.ndarray, quality: np.ndarray, pred_q: np.ndarray) -> dict:
    """Issue #11's rows: JPEG quality MAE per band and encoder family (with the share read from the table, the
    share missed, and the share flagged without a quality: damage found resized, whose quality is deliberately
    null), and WebP quality MAE at 30-95. Both kinds of null count MISSED_ERROR in the MAE."""
    error = quality_error(pred_q, quality)
    from_table = np.array([r.get("quality_source") == "table" for r in records])
    flagged_unknown = np.array([r["pred"] != "clean" for r in records]) & np.isnan(pred_q)
    out, rows = {}, []
    for family, kinds in QUALITY_FAMILIES:
        for lo, hi, band in QUALITY_BANDS:
            m = np.isin(kind, kinds) & (quality >= lo) & (quality <= hi)
            if not m.any():
                continue
            mae = float(error[m].mean())
            found = m & ~np.isnan(pred_q)
            out[f"quality_mae_{family}_{band}"] = mae
            if (flagged_unknown & m).any():  # (resized kinds only, so far: no key where there is none)
                out[f"no_quality_{family}_{band}"] = float((flagged_unknown & m).sum() / m.sum())
            rows.append([family, band, str(int(m.sum())), f"{mae:.2f}", f"{float(error[found].mean()):.2f}" if found.any() else "-",
                         f"{float(np.median(error[m])):.1f}", pct(int((from_table & m).sum()), int(m.sum())),
                         pct(int((np.isnan(pred_q) & ~flagged_unknown & m).sum()), int(m.sum())),
                         pct(int((flagged_unknown & m).sum()), int(m.sum()))])
    webp = np.isin(kind, WEBP_QUALITY_KINDS) & (quality >= 30) & (quality <= 95)
    if webp.any():
        out["webp_quality_mae_30_95"] = float(error[webp].mean())
        found = webp & ~np.isnan(pred_q)
        rows.append(["WebP (cwebp, Pillow, grey)", "30-95", str(int(webp.sum())), f"{out['webp_quality_mae_30_95']:.2f}",
                     f"{float(error[found].mean()):.2f}" if found.any() else "-", f"{float(np.median(error[webp])):.1f}", pct(int((from_table & webp).sum()), int(webp.sum())),
                     pct(int((np.isnan(pred_q) & ~flagged_unknown & webp).sum()), int(webp.sum())),
                     pct(int((flagged_unknown & webp).sum()), int(webp.sum()))])
    if rows:
        print_table(f"Quality error by encoder (issue #11; an image without a quality, missed or flagged with none, "
                    f"counts {MISSED_ERROR:g})",
                    ["encoder", "quality", "n", "MAE", "MAE of the flagged", "median", "from table", "missed",
                     "flagged, no quality"], rows)
    return out


def check_quality_bar(s: dict) -> list[tuple[str, bool]]:
    """Issue #11's bar: standard-table JPEG quality MAE per band, WebP quality MAE at 30-95."""
    family = QUALITY_FAMILIES[0][0]
    lines = [(f"standard-table JPEG quality MAE <= {bar:g} at {band}", s[f"quality_mae_{family}_{band}"] <= bar)
             for band, bar in QUALITY_BAR.items() if f"quality_mae_{family}_{band}" in s]
    if s.get("real_jpegs"):
        lines.append((f"real JPEG files: container.quality is their tables' IJG match ({s['real_jpegs']} files)",
                      s["real_jpegs_container_quality_equal"] == s["real_jpegs"]))
    if "webp_quality_mae_30_95" in s:
        lines.append((f"WebP quality MAE <= {WEBP_QUALITY_BAR:g} at 30-95", s["webp_quality_mae_30_95"] <= WEBP_QUALITY_BAR))
    return lines


def check_real_jpegs(folder: Path) -> dict:
    """Issue #11: for every JPEG under `folder`, `container.quality` must equal the IJG match of the file's own
    tables as Pillow parses them (an independent DQT reader)."""
    from PIL import Image

    from ccscore.container import read_container
    from ccscore.quantisation import fit_quality

    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg") and p.is_file())
    checked, mismatched, kinds = 0, [], {}
    for path in files:
        try:
            with Image.open(path) as im:
                tables = im.quantization
                luma_id = im.layer[0][3] if getattr(im, "layer", None) else min(tables)
        except Exception:  # not a JPEG Pillow reads: nothing to compare with
            continue
        facts = read_container(path)
        expected = fit_quality(np.array(tables[luma_id]).reshape(8, 8), np.ones((8, 8), bool)).quality
        checked += 1
        kinds[facts.get("table")] = kinds.get(facts.get("table"), 0) + 1
        if facts.get("quality") != expected:
            mismatched.append(f"{path}: container {facts.get('quality')}, tables {expected}")
    print_table("Real JPEG files: container.quality against the IJG match of their own tables (Pillow's reader)",
                ["files", "equal", "ijg tables", "custom tables"],
                [[str(checked), str(checked - len(mismatched)), str(kinds.get("ijg", 0)), str(kinds.get("custom", 0))]])
    for line in mismatched[:10]:
        print("  mismatch:", line)
    return {"real_jpegs": checked, "real_jpegs_container_quality_equal": checked - len(mismatched)}


def reliability_rows(p_lossy: np.ndarray, lossy: np.ndarray) -> list[list[str]]:
    """Per RELIABILITY_BINS bin: count, mean predicted P(lossy), observed lossy share; last row the expected
    calibration error (count-weighted |mean predicted - observed|)."""
    rows, ece = [], 0.0
    edges = RELIABILITY_BINS
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        m = (p_lossy >= lo) & ((p_lossy < hi) if i < len(edges) - 2 else (p_lossy <= hi))
        if not m.any():
            rows.append([f"[{lo:.2f}, {hi:.2f}{')' if i < len(edges) - 2 else ']'}", "0", "-", "-"])
            continue
        mean_p, observed = float(p_lossy[m].mean()), float(lossy[m].mean())
        ece += m.sum() / len(p_lossy) * abs(mean_p - observed)
        rows.append([f"[{lo:.2f}, {hi:.2f}{')' if i < len(edges) - 2 else ']'}", str(int(m.sum())), f"{mean_p:.3f}", f"{observed:.3f}"])
    rows.append(["ECE", str(len(p_lossy)), f"{ece:.4f}", ""])
    return rows


def check_wild_bar(s: dict) -> list[tuple[str, bool]]:
    """Issue #10's bar, line by line, for the groups this set has (a group it lacks is not a line)."""
    lines = []
    for name, _, bar in CLEAN_GROUPS:
        key = f"flagged_group_{name}"
        if key in s and not math.isnan(bar):
            lines.append((f"{name} flagged <= {100 * bar:g}%", s[key] <= bar))
    if "flat_labelled_clean" in s:
        lines.append(('blank or flat images: clean with "no evidence"',
                      s["flat_labelled_clean"] == 1.0 and s.get("flat_no_evidence", math.nan) == 1.0))
    return lines + lossy_group_lines(s, LOSSY_GROUPS)


def check_codec_bar(s: dict) -> list[tuple[str, bool]]:
    """Issue #12's bar (AVIF, JPEG XL, resized JPEG), line by line, for the groups this set has."""
    return lossy_group_lines(s, CODEC_GROUPS)


def lossy_group_lines(s: dict, groups: tuple[tuple[str, tuple[str, ...], float, float], ...]) -> list[tuple[str, bool]]:
    lines = []
    for name, _, least_caught, least_right in groups:
        if f"caught_group_{name}" not in s or math.isnan(least_caught):
            continue
        text = f"{name} caught >= {100 * least_caught:g}%"
        ok = s[f"caught_group_{name}"] >= least_caught
        if not math.isnan(least_right):
            text += f" with the codec right >= {100 * least_right:g}%"
            ok = ok and s[f"codec_right_group_{name}"] >= least_right
        lines.append((text, ok))
    return lines


def check_bar(s: dict) -> list[tuple[str, bool]]:
    """The detector issue's bar, line by line (NaN means not measured here, which fails)."""
    def ge(key, value):
        return s.get(key, math.nan) >= value

    lines = [
        ("AUROC clean vs lossy q<=90 >= 0.99", ge("auroc_clean_vs_lossy_q90", 0.99)),
        ("clean flagged <= 5%", s.get("fpr_clean", math.nan) <= 0.05),
        ("palette-quantised clean flagged <= 10%", s.get("fpr_palette", math.nan) <= 0.10),
        ("JPEG q<=80 caught >= 98%", ge("caught_jpeg_<=80", 0.98)),
        ("JPEG q81-90 caught >= 95%", ge("caught_jpeg_81-90", 0.95)),
        ("JPEG q91-95 caught >= 70%", ge("caught_jpeg_91-95", 0.70)),
        ("WebP q<=80 caught >= 95%", ge("caught_webp_<=80", 0.95)),
        ("WebP q81-90 caught >= 90%", ge("caught_webp_81-90", 0.90)),
        ("codec right for >= 95% of detected", ge("codec_right_of_detected", 0.95)),
        ("grid-shifted and double caught >= 90%", ge("caught_shifted_or_double", 0.90)),
        ("JPEG quality MAE <= 5 (q30-95)", s.get("jpeg_quality_mae_30_95", math.nan) <= 5),
    ]
    if "real_lossy_flagged" in s:
        got, total = map(int, s["real_lossy_flagged"].split("/"))
        lines.append((f"real lossy files flagged >= 13 of 14 (scaled: {got}/{total})", got >= math.ceil(total * 13 / 14)))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-set", type=Path, required=True, help="folder with manifest.csv (built if --clean-dir)")
    parser.add_argument("--clean-dir", type=Path, help="build --eval-set from this folder of clean art first")
    parser.add_argument("--real-lossy", type=Path, help="folder of real lossy files re-saved as PNG")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--threshold", type=float, default=None)
    parser.add_argument("--aggregate", default=None)
    parser.add_argument("--max-tiles", type=int, default=None, help="tiles per image (default: the model's)")
    parser.add_argument("--all-tiles", action="store_true", help="no early stop: score every chosen tile")
    parser.add_argument("--json", type=Path, help="write the summary here")
    parser.add_argument("--real-jpegs", type=Path, help="folder of real JPEG files: check container.quality")
    parser.add_argument("--kinds", help="comma-separated kinds to score (default: all), for quick checks")
    parser.add_argument("--workers", type=int, default=1, help="scoring processes (default 1)")
    args = parser.parse_args(argv)
    for folder, option in ((args.real_lossy, "--real-lossy"), (args.real_jpegs, "--real-jpegs")):
        if folder is not None and not folder.is_dir():  # else no file is scored and its line silently missing
            parser.error(f"{option} {folder}: no such folder")

    if args.clean_dir is not None:
        from ccscore_export.data.build import build_eval_set  # needs the [train] extra

        build_eval_set(args.clean_dir, args.eval_set)
    manifest = args.eval_set / "manifest.csv"
    if not manifest.is_file():
        parser.error(f"{manifest} not found: build it with --clean-dir")
    rows = list(csv.DictReader(open(manifest, newline="")))
    if args.kinds:
        rows = [r for r in rows if r["kind"] in args.kinds.split(",")]
    options = dict(model=args.model, threshold=args.threshold, aggregate=args.aggregate, max_tiles=args.max_tiles,
                   all_tiles=args.all_tiles)
    scorer = Scorer(**options)

    def score(root: Path, rows: list[dict]) -> list[dict]:
        if args.workers > 1:
            return score_folder_parallel(options, root, rows, args.workers)
        return score_folder(scorer, root, rows)

    print(f"model {scorer.info.name} {scorer.info.version} ({scorer.info.path}); threshold {scorer.threshold}, "
          f"aggregation {scorer.aggregation}, tiling {scorer.tiling_params}, early stop {scorer.early_stop}, "
          f"providers {scorer.providers}")
    start = time.time()
    records = score(args.eval_set, rows)
    real = []
    if args.real_lossy:
        files = sorted(p for p in args.real_lossy.rglob("*.png") if p.is_file())
        real = score(args.real_lossy, [{"path": str(p.relative_to(args.real_lossy)), "label": "jpeg",
                                                       "quality": "", "kind": "real"} for p in files])
    print(f"scored {len(records) + len(real)} images in {time.time() - start:.1f} s")
    summary = evaluate(records, real)
    if args.real_jpegs:
        summary.update(check_real_jpegs(args.real_jpegs))
    bar = check_bar(summary)
    print_table("Detector bar", ["requirement", "met"], [[name, "yes" if ok else "NO"] for name, ok in bar])
    wild_bar = check_wild_bar(summary)
    if wild_bar:
        print_table("Wild-art bar (issue #10)", ["requirement", "met"], [[name, "yes" if ok else "NO"] for name, ok in wild_bar])
    quality_bar = check_quality_bar(summary)
    if quality_bar:
        print_table("Quality bar (issue #11)", ["requirement", "met"], [[name, "yes" if ok else "NO"] for name, ok in quality_bar])
    codec_bar = check_codec_bar(summary)
    if codec_bar:
        print_table("AVIF, JPEG XL and resized damage bar (issue #12)", ["requirement", "met"],
                    [[name, "yes" if ok else "NO"] for name, ok in codec_bar])
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "bar": dict(bar), "wild_bar": dict(wild_bar),
                                         "quality_bar": dict(quality_bar), "codec_bar": dict(codec_bar)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
