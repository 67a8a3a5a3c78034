"""Training of the detector head on tiles built by `ccscore_export.data`.

The encoder is fixed, so its features are computed once per tile set and cached; only the head trains,
which keeps a full recipe within minutes on two CPU cores. Runs are seeded, log a CSV and a loss-curve PNG,
checkpoint every epoch and resume from the last checkpoint.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from .detector_export import load_checkpoint, save_checkpoint
from .labels import LABELS
from .metrics import auroc
from .model import ArtifactDetector, ArtifactEncoder, DetectorConfig


@dataclass
class Recipe:
    epochs: int = 80
    batch_size: int = 512
    lr: float = 2e-3
    weight_decay: float = 1e-4
    quality_weight: float = 2.0  # quality L1 is on a 0-1 scale; weight it up to matter next to cross-entropy
    seed: int = 0


def _file_digest(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def encode_tiles(encoder: ArtifactEncoder, tiles: np.ndarray, batch: int = 128, desc: str = "features") -> np.ndarray:
    """Encoder features of every tile, computed by onnxruntime: ~10x faster than eager torch on CPU here."""
    import tempfile

    import onnxruntime as ort

    from .onnx_export import PIXELS, IOSpec, export_graph

    features = IOSpec("features", ("batch", "features"))
    example = torch.from_numpy(np.ascontiguousarray(tiles[:2]))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "encoder.onnx"
        export_graph(encoder, example, path, inputs=[PIXELS], outputs=[features])
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        with torch.no_grad():  # the two must agree, or training would fit features the graph never computes
            expected = encoder(example).numpy()
        got = session.run(None, {PIXELS.name: example.numpy()})[0]
        if np.abs(expected - got).max() > 1e-3:
            raise RuntimeError(f"onnxruntime encoder disagrees with torch: {np.abs(expected - got).max():.3g}")
        out = [session.run(None, {PIXELS.name: np.ascontiguousarray(tiles[i : i + batch])})[0]
               for i in tqdm(range(0, len(tiles), batch), desc=desc, unit="batch", leave=False)]
    return np.concatenate(out).astype(np.float32)


def load_split(path: Path, encoder: ArtifactEncoder, cache_dir: Path,
               labels: tuple[str, ...] = LABELS) -> dict[str, np.ndarray]:
    """Loads a tile set and its encoder features, cached by file content and encoder configuration. Tile labels
    are codes into LABELS; they come back as the head's class indices (`labels`: the head's label names, clean
    first; e.g. clean,jpeg,webp,jxl leaves AVIF out). Every tile's label must be one of the head's: checked
    before the features are computed."""
    data = dict(np.load(path, allow_pickle=False))
    head_index = np.array([labels.index(name) if name in labels else -1 for name in LABELS])
    codes = data["label"]
    outside = (codes < 0) | (codes >= len(LABELS))
    outside[~outside] = head_index[codes[~outside]] < 0
    if outside.any():
        names = sorted({LABELS[c] if 0 <= c < len(LABELS) else str(c) for c in codes[outside].tolist()})
        raise ValueError(f"{path}: {int(outside.sum())} tiles are labelled {','.join(names)}, which the head "
                         f"({','.join(labels)}) does not have; train with those --labels, or merge without them")
    data["label"] = head_index[codes]
    key = hashlib.sha1((_file_digest(path) + json.dumps(encoder.config.__dict__, default=list)).encode()).hexdigest()[:16]
    cache = cache_dir / f"features-{path.stem}-{key}.npy"
    if cache.exists():
        data["features"] = np.load(cache)
    else:
        data["features"] = encode_tiles(encoder, data["tiles"], desc=f"features {path.name}")
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, data["features"])
    return data


def _losses(model: ArtifactDetector, feats: torch.Tensor, labels: torch.Tensor, quality: torch.Tensor,
            recipe: Recipe) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Total loss, class logits and predicted quality of a batch of encoder features."""
    logits, q_pred = model.head(feats)
    ce = F.cross_entropy(logits, labels)
    # Quality is a target only where it is known: NaN for clean tiles and for damage resized after
    # compression, whose setting the pixels no longer show (the head must not learn a confident guess).
    rated = (labels > 0) & torch.isfinite(quality)
    q_loss = (F.l1_loss(q_pred[rated, 0] / 100.0, quality[rated] / 100.0) if rated.any()
              else torch.zeros((), dtype=ce.dtype))
    return ce + recipe.quality_weight * q_loss, logits, q_pred


def evaluate(model: ArtifactDetector, split: dict[str, np.ndarray], recipe: Recipe) -> dict[str, float]:
    model.eval()
    with torch.no_grad():
        feats = torch.from_numpy(split["features"])
        labels = torch.from_numpy(split["label"].astype(np.int64))
        quality = torch.from_numpy(split["quality"].astype(np.float32))
        loss, logits, q_pred = _losses(model, feats, labels, quality, recipe)
        probs = torch.softmax(logits, 1).numpy()
        q_pred = q_pred[:, 0].numpy()
    lab = labels.numpy()
    lossy = lab > 0
    rated = lossy & np.isfinite(split["quality"])
    return {
        "loss": float(loss),
        "accuracy": float((probs.argmax(1) == lab).mean()),
        "auroc": auroc(1 - probs[:, 0], lossy),
        "quality_mae": float(np.abs(q_pred[rated] - split["quality"][rated]).mean()) if rated.any() else float("nan"),
    }


def plot_curve(log_path: Path, png_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(log_path, newline="") as f:
        rows = list(csv.DictReader(f))
    epochs = [int(r["epoch"]) for r in rows]
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    ax[0].plot(epochs, [float(r["train_loss"]) for r in rows], label="train")
    ax[0].plot(epochs, [float(r["val_loss"]) for r in rows], label="val")
    ax[0].set_xlabel("epoch"); ax[0].set_ylabel("loss"); ax[0].legend()
    ax[1].plot(epochs, [float(r["val_accuracy"]) for r in rows], label="val accuracy")
    ax[1].plot(epochs, [float(r["val_auroc"]) for r in rows], label="val AUROC (clean vs lossy)")
    ax[1].set_xlabel("epoch"); ax[1].legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


def train(train_path: Path, val_path: Path, out_dir: Path, recipe: Recipe | None = None,
          config: DetectorConfig | None = None, training_data: str = "", resume: bool = True) -> Path:
    """Trains the head; returns the path of the best checkpoint (by validation loss)."""
    recipe = recipe or Recipe()
    out_dir.mkdir(parents=True, exist_ok=True)
    last, best = out_dir / "last.pt", out_dir / "best.pt"
    log_path = out_dir / "log.csv"
    torch.manual_seed(recipe.seed)
    np.random.seed(recipe.seed)

    start_epoch, best_loss = 0, math.inf
    if resume and last.exists():
        model, blob = load_checkpoint(last)
        start_epoch, best_loss = blob["epoch"] + 1, blob["best_loss"]
        recipe = Recipe(**blob["recipe"])
        torch.set_rng_state(blob["rng_state"])
        print(f"resuming {last} at epoch {start_epoch}")
    else:
        model, blob = ArtifactDetector(config), None
        if log_path.exists():
            log_path.unlink()

    cache_dir = out_dir / "cache"
    train_split = load_split(train_path, model.encoder, cache_dir, model.config.labels)
    val_split = load_split(val_path, model.encoder, cache_dir, model.config.labels)
    if blob is None:
        feats = train_split["features"]
        model.head.feature_mean.copy_(torch.from_numpy(feats.mean(0)))
        model.head.feature_std.copy_(torch.from_numpy(feats.std(0) + 1e-4))

    optimizer = torch.optim.AdamW(model.head.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe.lr, epochs=recipe.epochs,
                                                    steps_per_epoch=math.ceil(len(train_split["label"]) / recipe.batch_size))
    if blob is not None:
        optimizer.load_state_dict(blob["optimizer"])
        scheduler.load_state_dict(blob["scheduler"])

    feats = torch.from_numpy(train_split["features"])
    labels = torch.from_numpy(train_split["label"].astype(np.int64))
    quality = torch.from_numpy(train_split["quality"].astype(np.float32))
    extra_meta = {"recipe": recipe.__dict__, "training_data": training_data or train_path.name}
    bar = tqdm(range(start_epoch, recipe.epochs), desc="train", unit="epoch", initial=start_epoch, total=recipe.epochs)
    for epoch in bar:
        model.train()
        t0 = time.time()
        perm = torch.randperm(len(labels))
        total = 0.0
        for i in range(0, len(perm), recipe.batch_size):
            idx = perm[i : i + recipe.batch_size]
            loss, _, _ = _losses(model, feats[idx], labels[idx], quality[idx], recipe)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += float(loss.detach()) * len(idx)
        metrics = evaluate(model, val_split, recipe)
        row = {"epoch": epoch, "train_loss": total / len(perm), **{f"val_{k}": v for k, v in metrics.items()},
               "seconds": time.time() - t0}
        new_log = not log_path.exists()
        with open(log_path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new_log:
                writer.writeheader()
            writer.writerow(row)
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", val_acc=f"{metrics['accuracy']:.3f}",
                        q_mae=f"{metrics['quality_mae']:.1f}")
        if metrics["loss"] < best_loss:
            best_loss = metrics["loss"]
            save_checkpoint(best, model, {**extra_meta, "epoch": epoch, "metrics": metrics})
        save_checkpoint(last, model, {**extra_meta, "epoch": epoch, "best_loss": best_loss,
                                      "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                                      "rng_state": torch.get_rng_state()})
    plot_curve(log_path, out_dir / "loss.png")
    return best
