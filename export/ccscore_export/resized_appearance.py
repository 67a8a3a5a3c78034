"""The resized-damage appearance network (`ccscore.resized_appearance`): a small CNN over an image's most textured
64 px cells that finds JPEG damage downscaled after compression where no grid read of the runtime does.

Trained on the resized judge's evaluation folders of the *training* sources (export/recipes/resized-judge.sh): their
JPEG-then-downscaled images (resized_judge.POSITIVE_KINDS) are the positives, every clean kind the negatives, each cell
labelled as its image; the cells are cut by the runtime's own tiling and `textured_cells`. Its threshold is chosen on
the calibration set (`data/eval-wild-cal`, validation sources) by the judge's rule (`choose_threshold_within_bars`): the
lowest that flags at most `--max-clean` of the clean images the runtime still calls clean and keeps every clean group's
bar, counting only the images the runtime asks (`Scorer.asks_appearance`); since session 30 on the calibration draw of
small art too (`data/eval-wild-cal-small`), and `--recalibrate` chooses the threshold again without training (after
the judge is refitted). The report set is never read here. The numpy forward pass the runtime runs is checked against
torch's (TORCH_TOLERANCE) before the JSON is written.

    ccscore-export resized-appearance --train data/judge/train-a ... --cal data/eval-wild-cal \\
        --out runtime/ccscore/resized_appearance.json   # export/recipes/resized-judge.sh runs it last
"""

from __future__ import annotations

import csv
import glob
import hashlib
import json
import re
import sys
import time
from multiprocessing import Pool
from pathlib import Path
from typing import Optional

import numpy as np

from .resized_judge import (POSITIVE_KINDS, check_fitting_arguments, choose_threshold_within_bars, fitting_parser,
                            reader_digest, write_spec)

# (output channels, stride) of the six 3x3 convolutions, each followed by batch norm and ReLU.
LAYERS = ((8, 1), (8, 1), (16, 2), (16, 1), (32, 2), (32, 1))
# The runtime's forward pass (numpy float32) against torch's: a larger gap in any cell's logit is an error. (Logits,
# not pooled scores: a score within ~1e-6 of one of `ResizedAppearance.pooled`'s cuts could take the other branch on
# float32 rounding alone, and differ by far more than either pass's error.)
TORCH_TOLERANCE = 1e-3
# Each epoch trains on a fresh random TRAIN_CELLS of each image's cells (up to the runtime's MAX_CELLS, all of which
# it may score), so the network learns the less textured cells it is asked about too, at 6 cells' cost an epoch.
TRAIN_CELLS = 6
# The share of a folder's images that may fail to read (said, and left out) before the reading stops as broken.
MAX_UNREAD = 0.01
_scorer = None


def _worker_scorer():
    global _scorer
    from ccscore import Scorer

    if _scorer is None:
        _scorer = Scorer(device="cpu", intra_op_threads=1, judge_appearance=False)
    return _scorer


def _cells_task(task: tuple[str, str, int, bool]) -> Optional[dict]:
    """One image's textured cells and, with `score`, the runtime's verdict without the network, whether it would
    be asked, and the cells of its whole pixels the runtime scores too (`whole_cells`: `ResizedAppearance.score_image`,
    a small image's; empty for others); None where it could not be read."""
    from ccscore.errors import one_line
    from ccscore.resized_appearance import textured_cells, whole_cells_scored
    from ccscore.results import ScoreFailure

    path, kind, label, score = task
    scorer = _worker_scorer()
    try:
        tiles, size = scorer.tile(path, cut_on_read=True)
        row = {"path": path, "kind": kind, "y": label}
        if score:
            result = scorer.score_together([(path, tiles, size)])[0]
            if isinstance(result, ScoreFailure):
                raise ValueError(result.error)
            # asked: still clean after the judge and the blocks, by the runtime's own gate
            row.update(verdict=result.label, asked=scorer.asks_appearance(result))
        row["cells"] = textured_cells(tiles.own())
        if score:
            row["whole_cells"] = whole_cells_scored(row["cells"], tiles.whole)
        return row
    except Exception as exc:  # one image that cannot be read must not end a long read
        print(f"{path}: {one_line(exc)}", flush=True)
        return None


def collect(root: Path, score: bool, workers: int = 2, log=print) -> list[dict]:
    """Every positive (POSITIVE_KINDS) and clean image of an evaluation folder, read (`_cells_task`)."""
    tasks = []
    with open(root / "manifest.csv", newline="") as f:
        for row in csv.DictReader(f):
            positive = row["kind"] in POSITIVE_KINDS
            if positive or row["label"] == "0":
                tasks.append((str(root / row["path"]), row["kind"], int(positive), score))
    log(f"reading {len(tasks)} images of {root}")
    with Pool(workers) as pool:
        rows = [row for row in pool.map(_cells_task, tasks, chunksize=8) if row is not None]
    if len(rows) < (1 - MAX_UNREAD) * len(tasks):  # a bug, not a few bad files: stop before training on the rest
        raise RuntimeError(f"{root}: {len(tasks) - len(rows)} of {len(tasks)} images could not be read")
    log(f"{root}: {len(tasks) - len(rows)} of {len(tasks)} images could not be read, left out")
    return rows


def verdicts_digest() -> str:
    """What a read's verdicts and asking depend on beside the runtime's code (`reader_digest`): the resized judge's
    JSON (the recipe refits it just before) and this module."""
    from ccscore.resized_judge import BUNDLED_JUDGE

    return hashlib.sha256(BUNDLED_JUDGE.read_bytes() + Path(__file__).read_bytes()).hexdigest()


def collect_cached(root: Path, score: bool, cache_dir: Optional[Path], reader: str, workers: int = 2,
                   log=print) -> list[dict]:
    """`collect`, kept in `cache_dir` (one .npz a folder and `score`, keyed by the folder's manifest, `score` and
    `reader`: `resized_judge.reader_digest`) and read from there while those stay the same. A new read replaces the
    folder's entry read another way before (every edit of the runtime's code changes `reader`: kept, they grew to
    tens of GB)."""
    key = hashlib.sha256((root / "manifest.csv").read_bytes() + f"{score}{reader}{POSITIVE_KINDS}{CELL_ARRAYS}".encode()
                         + (verdicts_digest().encode() if score else b"")).hexdigest()[:16]
    # the folder (its absolute path: two folders of one name keep their own entries) and how it is read
    entry = f"{root.name}-{hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:8]}-{'scored' if score else 'cells'}"
    cached = None if cache_dir is None else cache_dir / f"{entry}-{key}.npz"
    if cached is not None:
        try:
            with np.load(cached, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                stacks = {name: _unstacked(data[name], data[f"{name}_counts"]) for name in CELL_ARRAYS
                          if f"{name}_counts" in data.files}
            log(f"{root}: {len(meta)} images' cells read before")
            return [{**m, **{name: parts[k] for name, parts in stacks.items()}} for k, m in enumerate(meta)]
        except FileNotFoundError:  # none yet, or another process's newer read just replaced it: read again
            pass
    rows = collect(root, score, workers, log)
    if cached is not None:
        tmp = cached.with_suffix(".tmp.npz")
        meta = [{k: v for k, v in row.items() if k not in CELL_ARRAYS} for row in rows]
        arrays = {}
        for name in CELL_ARRAYS:
            if rows and name in rows[0]:
                arrays[name] = np.concatenate([row[name] for row in rows])
                arrays[f"{name}_counts"] = np.array([len(row[name]) for row in rows])
        np.savez(tmp, meta=json.dumps(meta), **arrays)
        tmp.replace(cached)
        legacy = re.compile(re.escape(root.name) + r"-[0-9a-f]{16}\.npz")  # before session 33: no path, no read kind
        for stale in cache_dir.glob(f"{glob.escape(root.name)}-*.npz"):
            if stale != cached and not stale.name.endswith(".tmp.npz") and (
                    stale.name.startswith(f"{entry}-") or legacy.fullmatch(stale.name)):
                stale.unlink(missing_ok=True)
    return rows


# A row's arrays of cells (uint8 [N, CELL, CELL, 3]), kept in the cache stacked with each row's count.
CELL_ARRAYS = ("cells", "whole_cells")


def _unstacked(stacked: np.ndarray, counts: np.ndarray) -> list[np.ndarray]:
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(int)
    return [stacked[starts[k]:starts[k + 1]] for k in range(len(counts))]


def build_network():
    """The torch network the runtime's numpy one mirrors: LAYERS of conv 3x3 (valid), batch norm, ReLU; a global
    mean; one logit."""
    import torch

    layers, channels = [], 6
    for out, stride in LAYERS:
        layers += [torch.nn.Conv2d(channels, out, 3, stride=stride), torch.nn.BatchNorm2d(out), torch.nn.ReLU()]
        channels = out
    return torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(channels, 1))


def torch_input(cells):
    """`ccscore.resized_appearance.appearance_input` in torch, batch first (torch's layout: [N, 6, H - 2, W - 2]), for
    batches of uint8 cells [N, H, W, 3]."""
    import torch

    from ccscore.resized_appearance import YCBCR

    planes = torch.einsum("nhwc,pc->nphw", cells.float(), torch.from_numpy(YCBCR))
    along_x = planes[:, :, 1:-1, 2:] - 2 * planes[:, :, 1:-1, 1:-1] + planes[:, :, 1:-1, :-2]
    along_y = planes[:, :, 2:, 1:-1] - 2 * planes[:, :, 1:-1, 1:-1] + planes[:, :, :-2, 1:-1]
    both = torch.stack([along_x, along_y], dim=2).reshape(len(cells), 6, *along_x.shape[2:])
    return torch.sign(both) * torch.log1p(both.abs())


def listed(values) -> list:
    """As JSON lists at float32's precision (the JSON half as long; the torch check runs on these numbers)."""
    return np.vectorize(lambda v: float(f"{v:.8g}"))(np.asarray(values, np.float64)).tolist()


def folded_spec(net) -> dict:
    """The trained network (in eval mode) as the runtime's JSON fields: each batch norm folded into its
    convolution."""
    spec = {"convs": []}
    modules = list(net)
    for k in range(0, 3 * len(LAYERS), 3):
        conv, norm = modules[k], modules[k + 1]
        factor = (norm.weight / (norm.running_var + norm.eps).sqrt()).detach().numpy()
        weight = conv.weight.detach().numpy() * factor[:, None, None, None]
        bias = (conv.bias.detach().numpy() - norm.running_mean.numpy()) * factor + norm.bias.detach().numpy()
        spec["convs"].append({"weight": listed(weight), "bias": listed(bias), "stride": conv.stride[0]})
    linear = modules[-1]
    spec["out"] = {"weight": listed(linear.weight[0].detach().numpy()),
                   "bias": float(f"{float(linear.bias[0].detach()):.8g}")}
    return spec


def train(rows: list[dict], epochs: int = 10, seed: int = 0, clean_share: float = 0.5,
          cells_per_image: int = TRAIN_CELLS, log=print):
    """The network trained on the rows' cells (label: the image's), seeded: each epoch all positive images and a fresh
    `clean_share` of the clean ones, a fresh random `cells_per_image` of each one's cells, class-balanced
    cross-entropy, Adam with a cosine schedule; random flips and transposes (a downscaled grid has no phase to
    keep)."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = build_network()
    cells = [row["cells"] for row in rows]
    labels = np.array([row["y"] for row in rows])
    positives, cleans = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    per_epoch = len(positives) + int(clean_share * len(cleans))
    optimiser = torch.optim.Adam(net.parameters(), lr=2e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, epochs)
    for epoch in range(epochs):
        started = time.time()
        chosen = np.concatenate([positives, rng.choice(cleans, int(clean_share * len(cleans)), replace=False)])
        picked = [cells[k][rng.permutation(len(cells[k]))[:cells_per_image]] for k in chosen]
        x = np.concatenate(picked)
        y = np.concatenate([np.full(len(c), labels[k], np.float32) for k, c in zip(chosen, picked)])
        weight = float((y == 0).sum()) / max(1.0, float((y == 1).sum()))
        loss_of = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(weight))
        order = rng.permutation(len(x))
        net.train()
        total = 0.0
        for start in range(0, len(order), 256):
            batch = torch.from_numpy(x[order[start:start + 256]])
            if rng.random() < 0.5:
                batch = batch.flip(2)
            if rng.random() < 0.5:
                batch = batch.transpose(1, 2)
            target = torch.from_numpy(y[order[start:start + 256]])
            optimiser.zero_grad()
            loss = loss_of(net(torch_input(batch)).squeeze(1), target)
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(target)
        schedule.step()
        log(f"epoch {epoch + 1}/{epochs}: {per_epoch} images, {len(x)} cells, loss {total / len(x):.4f}, "
            f"{time.time() - started:.0f} s")
    net.eval()
    return net


def torch_logits(net, rows: list[dict]) -> list[Optional[np.ndarray]]:
    """Each row's cells' logits by torch (None without cells)."""
    import torch

    with torch.no_grad():
        return [net(torch_input(torch.from_numpy(row["cells"]))).squeeze(1).numpy() if len(row["cells"]) else None
                for row in rows]


def _runtime_network(spec: dict):
    from ccscore.resized_appearance import ResizedAppearance

    return ResizedAppearance.from_spec({**spec, "threshold": 1.0})


def runtime_scores(spec: dict, rows: list[dict]) -> np.ndarray:
    """Each row's image score by the runtime's numpy network of these JSON fields, as the runtime scores the image
    (`ResizedAppearance.score_cells`: a small image's whole-pixel cells too, where the row holds them); NaN without
    cells."""
    network = _runtime_network(spec)
    scores = [network.score_cells(r["cells"], r.get("whole_cells")) for r in rows]
    return np.array([np.nan if score is None else score for score in scores])


def runtime_logits(spec: dict, rows: list[dict]) -> list[Optional[np.ndarray]]:
    """Each row's cells' logits by the runtime's numpy network (None without cells): what `runtime_scores` pools.
    A row's whole-pixel cells (`whole_cells`) are checked by `cell_rows` making them rows of their own."""
    network = _runtime_network(spec)
    return [network.logits(r["cells"]) if len(r["cells"]) else None for r in rows]


def cell_rows(rows: list[dict]) -> list[dict]:
    """Every array of cells the rows hold (their tiles' cells, and a small image's whole-pixel cells where read), one
    row each: what the torch check compares."""
    return [{"cells": row[name]} for row in rows for name in CELL_ARRAYS if name in row]


def check_against_torch(ours: list[Optional[np.ndarray]], theirs: list[Optional[np.ndarray]]) -> float:
    """The largest gap between the runtime's cell logits (`runtime_logits`) and torch's (`torch_logits`) on the same
    rows; RuntimeError over TORCH_TOLERANCE, or where one has cells and the other none."""
    if len(ours) != len(theirs) or any((a is None) != (b is None) or (a is not None and a.shape != b.shape)
                                       for a, b in zip(ours, theirs)):
        raise RuntimeError("the runtime's appearance network and torch's read different cells")
    gaps = [float(np.max(np.abs(a - b))) for a, b in zip(ours, theirs) if a is not None and len(a)]
    gap = max(gaps, default=0.0)
    if not gap <= TORCH_TOLERANCE:
        raise RuntimeError(f"the runtime's appearance network differs from torch's by {gap:.2e} (> {TORCH_TOLERANCE})")
    return gap


# Added to the chosen threshold (the score of a clean image it must not flag): another machine's float32 sums may
# move a score by ~1e-6, and that image must stay unflagged there too; raising it can only flag fewer.
THRESHOLD_SLACK = 1e-4


def calibrate(ours: np.ndarray, cal: list[dict], max_clean: float) -> tuple[float, np.ndarray, str]:
    """The threshold chosen on the calibration rows (`collect` with verdicts) by the judge's rule, on the scores the
    runtime computes on the image's cells (`runtime_scores`; 0 where it does not ask or has no cells); those scores; a
    line saying what it flags and finds there. A small image's score is the runtime's (`ResizedAppearance.score_image`,
    session 27: the higher of its tiles' cells' and its whole pixels' score; in the fit since session 30, whose
    calibration draw of small art needs it)."""
    scores = np.where(np.array([r["asked"] for r in cal], bool) & ~np.isnan(ours), ours, 0.0)
    clean = [k for k, r in enumerate(cal) if r["y"] == 0]
    threshold = choose_threshold_within_bars([cal[k] for k in clean], scores[clean], max_clean)
    threshold = min(1.0, threshold + THRESHOLD_SLACK) if threshold < 1.0 else threshold
    still_clean = [k for k in clean if cal[k]["verdict"] == "clean"]
    found = []
    for kind in POSITIVE_KINDS:
        members = [k for k, r in enumerate(cal) if r["kind"] == kind]
        before = sum(cal[k]["verdict"] != "clean" for k in members)
        found.append(f"{kind} {before} -> {before + sum(scores[k] > threshold for k in members)} of {len(members)}")
    return threshold, scores, (f"threshold {threshold:.6f}: calibration clean flagged "
                               f"{int((scores[still_clean] > threshold).sum())} of {len(still_clean)} still clean; "
                               f"found {', '.join(found)}")


def write_rows(path: Path, cal: list[dict], scores: np.ndarray) -> None:
    """The calibration rows (`collect` with verdicts: kind, verdict, asked; no cells) with the score each got, as JSON
    (`--rows`; session 32's scripts write theirs so too)."""
    path.write_text(json.dumps([{**{k: v for k, v in r.items() if k not in CELL_ARRAYS}, "score": float(s)}
                                for r, s in zip(cal, scores)]))


# What a trained JSON must hold to be recalibrated: its weights, what it was trained with, and for which model.
RECALIBRATED_KEYS = ("convs", "out", "threshold", "max_clean", "seed", "epochs", "model", "fitted_on")


def read_trained(parser, path: Path) -> dict:
    """The trained JSON `--recalibrate` names; a usage error (one line) where it is unreadable or lacks a field."""
    try:
        trained = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        parser.error(f"--recalibrate: {path}: {' '.join(str(exc).split())}")
    if (not isinstance(trained, dict) or any(key not in trained for key in RECALIBRATED_KEYS)
            or not isinstance(trained["model"], dict)):
        parser.error(f"--recalibrate: {path} is not a trained network's JSON (needs {', '.join(RECALIBRATED_KEYS)})")
    return trained


def main(argv: list[str] | None = None) -> int:
    parser = fitting_parser("ccscore-export resized-appearance", __doc__.splitlines()[0], 0.002)
    parser.add_argument("--epochs", type=int, default=None, help="default 10")
    parser.add_argument("--cells", type=Path, default=None, metavar="DIR",
                        help="keep each folder's cells here and read them back while its manifest, the model and "
                             "the reading code are as they were (one entry a folder: a new read replaces "
                             "the one before)")
    parser.add_argument("--rows", type=Path, default=None, metavar="JSON",
                        help="write the calibration set's rows (kind, verdict, asked, score) here")
    parser.add_argument("--recalibrate", type=Path, default=None, metavar="JSON",
                        help="no training: choose the threshold again for the network in this JSON (its weights "
                             "kept; after the judge is refitted, whose verdicts decide what the network is asked); "
                             "--train, --seed and --epochs do not apply")
    args = parser.parse_args(argv)
    if args.recalibrate is not None and (args.train or args.seed is not None or args.epochs is not None):
        parser.error("--recalibrate keeps the network as trained: --train, --seed and --epochs do not apply")
    check_fitting_arguments(parser, args, training=args.recalibrate is None)
    if args.epochs is not None and args.epochs < 1:
        parser.error(f"--epochs must be 1 or more, got {args.epochs}")
    trained = None if args.recalibrate is None else read_trained(parser, args.recalibrate)
    import torch

    from ccscore import Scorer
    from ccscore.resized_judge import fitted_for_of

    torch.set_num_threads(args.workers)
    if args.cells is not None:
        args.cells.mkdir(parents=True, exist_ok=True)
    fitted_for = Scorer(device="cpu", judge_appearance=False)
    info = fitted_for.info
    if trained is not None and fitted_for_of(trained)[2] != fitted_for.model_digest:  # another model's verdicts
        parser.error(f"--recalibrate: {args.recalibrate} was not trained for this model file")
    reader = reader_digest(fitted_for.model_digest)
    cal = [row for root in args.cal for row in collect_cached(root, True, args.cells, reader, args.workers)]
    if trained is not None:  # the weights as trained (and checked against torch then); a new threshold
        spec = {key: trained[key] for key in ("convs", "out")}
        trained_on, seed, epochs = trained["fitted_on"], trained["seed"], trained["epochs"]
        # the JSON says of itself that only its threshold was chosen again, and on what it was chosen before
        recalibrated = {"threshold_before": trained["threshold"], "max_clean_before": trained["max_clean"],
                        "cal_before": trained["fitted_on"].get("cal")}
        check = "not trained again"
    else:
        train_rows = [row for root in args.train
                      for row in collect_cached(root, False, args.cells, reader, args.workers)]
        print(f"training on {sum(r['y'] for r in train_rows)} positive images, "
              f"{sum(1 - r['y'] for r in train_rows)} clean, {sum(len(r['cells']) for r in train_rows)} cells")
        seed = 0 if args.seed is None else args.seed
        epochs, recalibrated = 10 if args.epochs is None else args.epochs, None
        net = train(train_rows, epochs, seed)
        spec = folded_spec(net)
        checked = cell_rows(cal)
        gap = check_against_torch(runtime_logits(spec, checked), torch_logits(net, checked))
        check = f"numpy against torch: {gap:.1e}"
        trained_on = {"train": [str(p) for p in args.train], "positives": sum(r["y"] for r in train_rows),
                      "clean": sum(1 - r["y"] for r in train_rows)}
    ours = runtime_scores(spec, cal)  # the staged scores the runtime computes, pooling the logits checked
    threshold, scores, summary = calibrate(ours, cal, args.max_clean)
    print(f"{check}; {summary}")
    if args.rows is not None:
        write_rows(args.rows, cal, scores)
    spec.update(threshold=threshold, max_clean=args.max_clean, seed=seed, epochs=epochs,
                model={"name": info.name, "version": info.version, "digest": fitted_for.model_digest},
                fitted_on={**{k: v for k, v in trained_on.items() if k != "cal"}, "cal": [str(p) for p in args.cal]})
    if recalibrated is not None:
        spec["recalibrated"] = recalibrated
    write_spec(args.out, spec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
