"""The resized-damage judge: a small classifier over `ccscore.resized.resized_features` that finds JPEG damage
downscaled after compression where no single rule of the runtime's (evidence `downscaled`, `chroma`) is met.

Fitted on evaluation folders built from the *training* sources (`build-data --split train --export-clean`, then
`--eval-from ... --kinds jpeg_downscaled,<clean kinds>`): their JPEG-then-downscaled images (POSITIVE_KINDS: on the
art itself, and since session 22 on grey art and line art) are the positives, every clean kind the negatives. Its
threshold is chosen on the calibration set (`data/eval-wild-cal`, validation sources): the lowest that flags at most
`--max-clean` of the calibration set's clean images the runtime still calls clean and keeps every clean group's bar of
issues #10 and #12 there (`bars.CLEAN_GROUPS`, counting what the runtime flags already), as the grid gate's
calibration keeps them; since session 30 on a calibration draw of the validation sources' small art too
(`data/eval-wild-cal-small`, 128-255 px a side; the folders' images pooled, each bar counted over all of them), with
`--spare` images of each bar left to the appearance network. The report set (`data/eval-wild`) is never read here.
Output: the JSON the runtime loads
(`ccscore/resized_judge.json`): feature standardisation, a one-hidden-layer network's weights, the threshold, and what
it was fitted on.

    ccscore-export resized-judge --train data/judge/train-a ... --cal data/eval-wild-cal \\
        --out runtime/ccscore/resized_judge.json   # export/recipes/resized-judge.sh builds the folders and runs it
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from multiprocessing import Pool
from pathlib import Path
from typing import Optional

import numpy as np

POSITIVE_KINDS = ("jpeg_downscaled", "jpeg_grey_downscaled", "jpeg_lineart_downscaled")
# Clean art downscaled (issue #10's "downscaled" group) weighs this much more in the fit: its bar (3%) is the one the
# judge's threshold meets first on the calibration set (its head already flags 9 of 360 there).
DOWNSCALED_GROUP_WEIGHT = 3.0
_scorer = None


def _features(task: tuple[str, str, int]) -> Optional[dict]:
    """One image's judge inputs ("x": None where it has none, e.g. no detail: never asked) and the runtime's verdict
    without the judge; None where it could not be scored."""
    global _scorer
    from ccscore import Scorer
    from ccscore.errors import one_line

    path, kind, label = task
    if _scorer is None:
        _scorer = Scorer(device="cpu", judge_resized=False)
    try:
        result = _scorer.score(path)
        x = _scorer.resized_inputs(path, result)
    except Exception as exc:  # one image that cannot be read must not end a long read
        print(f"{path}: {one_line(exc)}", flush=True)
        return None
    return {"path": path, "kind": kind, "y": label, "verdict": result.label, "x": None if x is None else x.tolist()}


def collect(roots: list[Path], workers: int = 2, log=print) -> list[dict]:
    """The judge's inputs for every positive (POSITIVE_KINDS) and clean image of these evaluation folders (those that
    could not be scored left out, and said)."""
    tasks = []
    for root in roots:
        with open(root / "manifest.csv", newline="") as f:
            for row in csv.DictReader(f):
                positive = row["kind"] in POSITIVE_KINDS
                if positive or row["label"] == "0":
                    tasks.append((str(root / row["path"]), row["kind"], int(positive)))
    log(f"reading {len(tasks)} images of {', '.join(map(str, roots))}")
    with Pool(workers) as pool:
        rows = pool.map(_features, tasks, chunksize=8)
    return [row for row in rows if row is not None]


def reader_digest(model_digest: str) -> str:
    """What the inputs read depend on besides the folders: the model file (its SHA-256) and the runtime that reads
    them and gives the verdicts (every module and decoder table of the `ccscore` package; not the judge's own JSON,
    which a fit rewrites)."""
    import hashlib

    import ccscore

    digest = hashlib.sha256(model_digest.encode())
    package = Path(ccscore.__file__).parent
    for path in sorted([*package.rglob("*.py"), *package.rglob("*.bits.xz")]):
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def collect_cached(roots: list[Path], cache: dict, reader: str, workers: int = 2, log=print,
                   save=lambda cache: None) -> list[dict]:
    """`collect` of each folder, read from `cache` (folder -> the key it was read under, and its rows) where the key
    is the same: the folder's manifest (SHA-256), the POSITIVE_KINDS it holds and `reader` (`reader_digest`); the
    others read, put in `cache` and `save`d one by one (a long read interrupted keeps the folders done)."""
    import hashlib

    rows = []
    for root in roots:
        manifest = (root / "manifest.csv").read_bytes()
        rows_read = csv.DictReader(io.StringIO(manifest.decode(), newline=""))
        if "kind" not in (rows_read.fieldnames or []):
            raise ValueError(f"{root / 'manifest.csv'} has no kind column: not an evaluation folder's manifest")
        kinds = {row["kind"] for row in rows_read}
        key = {"manifest": hashlib.sha256(manifest).hexdigest(), "positive_kinds": sorted(kinds & set(POSITIVE_KINDS)),
               "reader": reader}
        entry = cache.get(str(root))
        if isinstance(entry, dict) and "rows" in entry and all(entry.get(k) == v for k, v in key.items()):
            log(f"{root}: {len(entry['rows'])} images' inputs read before")
        else:
            entry = cache[str(root)] = {**key, "rows": collect([root], workers, log)}
            save(cache)
        rows += entry["rows"]
    return rows


def fit(x: np.ndarray, y: np.ndarray, hidden: int = 64, epochs: int = 600, weight_decay: float = 1e-3,
        seed: int = 0, weights: Optional[np.ndarray] = None, members: int = 5) -> dict:
    """`members` one-hidden-layer networks (tanh; seeds seed, seed + 1, ...) on standardised inputs, each by
    full-batch Adam on class-balanced cross-entropy (each image's loss times its `weights`, where given), their
    logits averaged: one network of members x hidden units (an ensemble steadier than any one of its members, whose
    threshold would move with the seed). Its parameters as the runtime's JSON lists."""
    import torch

    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 1e-6, scale, 1.0)  # an input that never varies (luma's own ratio to luma) stays 0
    inputs = torch.tensor((x - mean) / scale, dtype=torch.float32)
    targets = torch.tensor(y, dtype=torch.float32)
    positive_weight = torch.tensor(float((y == 0).sum()) / max(1.0, float((y == 1).sum())))
    each = torch.ones(len(y)) if weights is None else torch.tensor(weights, dtype=torch.float32)
    loss_of = torch.nn.BCEWithLogitsLoss(weight=each, pos_weight=positive_weight)
    nets = []
    for member in range(members):
        torch.manual_seed(seed + member)
        net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1))
        optimiser = torch.optim.Adam(net.parameters(), lr=1e-2, weight_decay=weight_decay)
        for _ in range(epochs):
            optimiser.zero_grad()
            loss = loss_of(net(inputs).squeeze(1), targets)
            loss.backward()
            optimiser.step()
        nets.append(net)
    def listed(values) -> list:  # at float32's precision: the JSON half as long, the check below on these numbers
        return np.vectorize(lambda v: float(f"{v:.8g}"))(np.asarray(values, np.float64)).tolist()

    with torch.no_grad():
        spec = {"mean": listed(mean), "scale": listed(scale),
                "hidden": {"weight": listed(torch.cat([net[0].weight for net in nets]).numpy()),
                           "bias": listed(torch.cat([net[0].bias for net in nets]).numpy())},
                "out": {"weight": listed((torch.cat([net[2].weight[0] for net in nets]) / members).numpy()),
                        "bias": float(f"{float(torch.stack([net[2].bias[0] for net in nets]).mean()):.8g}")}}
        logits = torch.stack([net(inputs).squeeze(1) for net in nets]).mean(dim=0)
    check_against_torch(spec, x, torch.sigmoid(logits).numpy())
    return spec


# The runtime's forward pass (float64 numpy) against torch's (float32) on the fitting inputs: a gap over this is an
# error (the JSON would not be the network that was fitted).
TORCH_TOLERANCE = 1e-4


def check_against_torch(spec: dict, x: np.ndarray, torch_probabilities: np.ndarray) -> None:
    from ccscore.resized_judge import ResizedJudge

    judge = ResizedJudge.from_spec({**spec, "threshold": 1.0})
    gap = float(np.max(np.abs(np.array([judge.probability(row) for row in x]) - torch_probabilities)))
    if not gap <= TORCH_TOLERANCE:
        raise RuntimeError(f"the runtime's judge differs from torch's by {gap:.2e} (> {TORCH_TOLERANCE})")


def choose_threshold(scores: np.ndarray, max_clean: float) -> float:
    """The lowest score flagging at most `max_clean` of these (clean images' scores)."""
    allowed = int(np.floor(max_clean * len(scores)))
    ordered = np.sort(scores)[::-1]
    if not len(ordered):
        return 1.0  # nothing to measure on: flag nothing
    return float(ordered[allowed]) if allowed < len(ordered) else 0.0


def within_bars(rows: list[dict], flagged: np.ndarray, spare: int = 0) -> bool:
    """Whether the calibration set's clean images (`rows`: kind, verdict before the judge) flagged before or by the
    judge (`flagged`, per row) keep every clean group's bar of issues #10 and #12 (`bars.CLEAN_GROUPS`) with
    `spare` images to spare (none, as the grid gate's calibration limits clean groups: its spare is the lossy
    lines'). A group over its bar before the judge (session 30: grey, 15 of the two calibration sets' 360 pooled,
    its bar 14) may gain no image: the judge keeps it where it was."""
    from .bars import CLEAN_GROUPS

    for _, kinds, bar in CLEAN_GROUPS:
        if np.isnan(bar):
            continue
        members = [k for k, row in enumerate(rows) if kinds is None or row["kind"] in kinds]
        before = sum(rows[k]["verdict"] != "clean" for k in members)
        count = sum(rows[k]["verdict"] != "clean" or bool(flagged[k]) for k in members)
        if members and count > max(np.floor(bar * len(members)) - spare, before):
            return False
    return True


def choose_threshold_within_bars(rows: list[dict], scores: np.ndarray, max_clean: float, spare: int = 0) -> float:
    """The lowest threshold (of the calibration set's clean images `rows`, judge `scores` per row) that flags at
    most `max_clean` of those still clean and keeps every clean group's bar (`within_bars`); 1.0 where even the
    highest score would break one."""
    still_clean = np.array([row["verdict"] == "clean" for row in rows])
    threshold = choose_threshold(scores[still_clean], max_clean)
    best = 1.0
    for candidate in sorted(set(scores[still_clean].tolist()) | {threshold}, reverse=True):
        if candidate < threshold or not within_bars(rows, still_clean & (scores > candidate), spare):
            break
        best = candidate
    return best


def asked(values: Optional[list[float]]) -> bool:
    """Whether the runtime asks the judge about an image with these inputs (its head's lean, the first)."""
    from ccscore.scorer import JUDGE_MAX_TILE_CLEAN

    return values is not None and values[0] <= JUDGE_MAX_TILE_CLEAN


def fitting_parser(prog: str, description: str, max_clean: float) -> argparse.ArgumentParser:
    """The arguments the resized-damage networks' fittings share (this judge's, the appearance network's)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--train", type=Path, nargs="+", default=None,
                        help="evaluation folders of training sources (required, but for resized-appearance "
                             "--recalibrate)")
    parser.add_argument("--cal", type=Path, nargs="+", required=True,
                        help="the calibration set (threshold) and any further calibration draws (e.g. of small art)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max-clean", type=float, default=max_clean,
                        help="share of the calibration set's still-clean clean images it may flag")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=None, help="default 0")
    return parser


def check_fitting_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace, training: bool = True) -> None:
    """Usage errors (exit 2) in the shared arguments: --train missing where a fit trains, --workers under 1,
    --max-clean outside [0, 1], a training or calibration folder without its manifest."""
    if training and not args.train:
        parser.error("--train is required")
    if args.workers < 1:
        parser.error(f"--workers must be 1 or more, got {args.workers}")
    if not 0.0 <= args.max_clean <= 1.0:
        parser.error(f"--max-clean must be within [0, 1], got {args.max_clean}")
    if missing := [str(root) for root in [*(args.train or []), *args.cal] if not (root / "manifest.csv").is_file()]:
        parser.error(f"no manifest.csv in {', '.join(missing)}")


def write_spec(path: Path, spec: dict) -> None:
    """The fitted JSON, replaced whole (a run killed while writing leaves the old one)."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(spec, separators=(",", ":")) + "\n")
    tmp.replace(path)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    from ccscore.resized_judge import ResizedJudge

    parser = fitting_parser("ccscore-export resized-judge", __doc__.splitlines()[0], 0.005)
    parser.add_argument("--features", type=Path, default=None, metavar="JSON",
                        help="the images' inputs, folder by folder: read from this file for each folder whose "
                             "manifest, positive kinds, model and reading code are as they were (`collect_cached`), "
                             "the others read and written back")
    parser.add_argument("--spare", type=int, default=0, metavar="N",
                        help="leave N images of every clean group's bar on the calibration sets unflagged, for the "
                             "appearance network fitted after the judge (export/recipes/resized-judge.sh: 4)")
    args = parser.parse_args(argv)
    check_fitting_arguments(parser, args)
    if args.spare < 0:
        parser.error(f"--spare must be 0 or more, got {args.spare}")
    seed = 0 if args.seed is None else args.seed
    from ccscore import Scorer

    fitted_for = Scorer(device="cpu", judge_resized=False)
    info = fitted_for.info
    if args.features is not None and not args.features.parent.is_dir():
        parser.error(f"--features: no folder {args.features.parent}")
    try:
        cache = json.loads(args.features.read_text()) if args.features is not None and args.features.is_file() else {}
    except json.JSONDecodeError:  # cut short (a run killed while writing it is not: it is replaced whole)
        cache = {}
    if not isinstance(cache, dict) or "train_rows" in cache:  # not this format (an earlier one): read again
        cache = {}

    def save(cache: dict) -> None:
        if args.features is not None:
            tmp = args.features.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(cache))
            tmp.replace(args.features)

    reader = reader_digest(fitted_for.model_digest)
    train = collect_cached(args.train, cache, reader, args.workers, save=save)
    cal = collect_cached(args.cal, cache, reader, args.workers, save=save)
    train = [r for r in train if r["x"] is not None]  # an image without inputs is never asked
    x, y = np.array([r["x"] for r in train]), np.array([r["y"] for r in train])
    from .bars import CLEAN_GROUPS

    downscaled = next(kinds for name, kinds, _ in CLEAN_GROUPS if name == "downscaled")
    weights = np.array([DOWNSCALED_GROUP_WEIGHT if r["y"] == 0 and r["kind"] in downscaled else 1.0 for r in train])
    print(f"fitting on {int(y.sum())} positives, {int((y == 0).sum())} clean")
    spec = fit(x, y, seed=seed, weights=weights)
    judge = ResizedJudge.from_spec({**spec, "threshold": 1.0})
    clean = [r for r in cal if r["y"] == 0]
    scores = np.array([judge.probability(np.array(r["x"])) if asked(r["x"]) else 0.0 for r in clean])
    threshold = choose_threshold_within_bars(clean, scores, args.max_clean, args.spare)
    still_clean = np.array([r["verdict"] == "clean" for r in clean])
    positives = [r for r in cal if r["y"] == 1]
    found = sum(r["verdict"] != "clean" or (asked(r["x"]) and judge.probability(np.array(r["x"])) > threshold)
                for r in positives)
    print(f"threshold {threshold:.4f}: calibration clean flagged {int((scores[still_clean] > threshold).sum())} of "
          f"{int(still_clean.sum())} still clean; {', '.join(POSITIVE_KINDS)} found {found} of {len(positives)} "
          f"(before the judge {sum(r['verdict'] != 'clean' for r in positives)})")
    spec.update(threshold=threshold, max_clean=args.max_clean, spare=args.spare, seed=seed,
                model={"name": info.name, "version": info.version, "digest": fitted_for.model_digest},
                fitted_on={"train": [str(p) for p in args.train], "cal": [str(p) for p in args.cal],
                           "positives": int(y.sum()), "clean": int((y == 0).sum())})
    write_spec(args.out, spec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
