"""Training: seeded, logged, resumable, and it learns the easy cases."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from ccscore.tiling import content_tiles
from ccscore_export.detector_export import load_checkpoint
from ccscore_export.train import Recipe, train
from conftest import compress, draw_art


def tile_set(path, seeds):
    tiles, labels, qualities, kinds = [], [], [], []
    for seed in seeds:
        clean = draw_art(seed, (320, 256))
        for label, (fmt, q) in enumerate([(None, None), ("JPEG", 60 + seed % 30), ("WEBP", 60 + seed % 30)]):
            im = clean if fmt is None else compress(clean, fmt, q)
            t = content_tiles(np.asarray(im), 128, max_tiles=2).pixels
            tiles.append(t)
            labels += [label] * len(t)
            qualities += [np.nan if q is None else float(q)] * len(t)
            kinds += [fmt or "clean"] * len(t)
    np.savez(path, tiles=np.concatenate(tiles), label=np.array(labels), quality=np.array(qualities, np.float32),
             kind=np.array(kinds))
    return path


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiles")
    return tile_set(folder / "train.npz", range(12)), tile_set(folder / "val.npz", range(50, 56))


def test_training_learns_logs_and_resumes(splits, tmp_path):
    train_path, val_path = splits
    best = train(train_path, val_path, tmp_path / "run", Recipe(epochs=3, batch_size=16, lr=3e-3))
    rows = list(csv.DictReader(open(tmp_path / "run" / "log.csv")))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert (tmp_path / "run" / "loss.png").stat().st_size > 1000
    # Resuming with a longer schedule continues where it stopped: no epoch is logged twice.
    train(train_path, val_path, tmp_path / "run", Recipe(epochs=3, batch_size=16, lr=3e-3))
    assert len(list(csv.DictReader(open(tmp_path / "run" / "log.csv")))) == 3
    model, blob = load_checkpoint(best)
    assert blob["metrics"]["auroc"] > 0.8, blob["metrics"]  # clean vs q60-90 is the easy part of the task


def test_training_is_reproducible(splits, tmp_path):
    train_path, val_path = splits
    a = train(train_path, val_path, tmp_path / "a", Recipe(epochs=2, batch_size=16, seed=3))
    b = train(train_path, val_path, tmp_path / "b", Recipe(epochs=2, batch_size=16, seed=3))
    wa, wb = load_checkpoint(a)[0].state_dict(), load_checkpoint(b)[0].state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_unknown_quality_is_no_target():
    """Damage resized after compression carries quality NaN: the quality head is not trained on it (a target
    of 0, or NaN through the loss, would teach a confident wrong number or poison the run)."""
    from torch.nn import functional as F

    from ccscore_export.model import ArtifactDetector
    from ccscore_export.train import _losses

    torch.manual_seed(0)
    model = ArtifactDetector()
    feats = torch.randn(4, model.encoder.feature_size)
    labels = torch.tensor([0, 1, 1, 3])
    rated = torch.tensor([float("nan"), 70.0, float("nan"), 50.0])
    unrated = torch.tensor([float("nan")] * 4)
    recipe = Recipe()
    loss, logits, q_pred = _losses(model, feats, labels, unrated, recipe)
    assert torch.isfinite(loss) and torch.isclose(loss, F.cross_entropy(logits, labels))
    loss, logits, q_pred = _losses(model, feats, labels, rated, recipe)
    known = torch.tensor([1, 3])
    expected = F.cross_entropy(logits, labels) + recipe.quality_weight * F.l1_loss(q_pred[known, 0] / 100, rated[known] / 100)
    assert torch.isclose(loss, expected)


def test_train_command_takes_clean_and_some_codecs_in_order(splits, tmp_path):
    """`--labels clean,jpeg,webp` trains a three-label head on data without AVIF or JPEG XL; labels out of
    order, or without clean first, are refused."""
    from typer.testing import CliRunner

    from ccscore_export.cli import app

    train_path, val_path = splits
    runner = CliRunner()
    refused = runner.invoke(app, ["train", "--train", str(train_path), "--val", str(val_path), "--out",
                                  str(tmp_path / "bad"), "--labels", "clean,webp,jpeg", "--epochs", "1"])
    assert refused.exit_code == 2 and "must be clean and at least one of" in refused.output
    no_clean = runner.invoke(app, ["train", "--train", str(train_path), "--val", str(val_path), "--out",
                                   str(tmp_path / "bad"), "--labels", "jpeg,webp", "--epochs", "1"])
    assert no_clean.exit_code == 2 and "must be clean and at least one of" in no_clean.output
    done = runner.invoke(app, ["train", "--train", str(train_path), "--val", str(val_path), "--out",
                               str(tmp_path / "run"), "--labels", "clean,jpeg,webp", "--epochs", "1"])
    assert done.exit_code == 0, done.output
    model, _ = load_checkpoint(tmp_path / "run" / "best.pt")
    assert model.config.labels == ("clean", "jpeg", "webp")
    assert model.head.classify.out_features == 3


def test_tiles_labelled_beyond_the_heads_labels_are_refused_before_training(splits, tmp_path):
    """A three-label head on data with AVIF (code 3) tiles: a clear error naming the labels, before features are
    computed, not an index error deep in the loss."""
    from typer.testing import CliRunner

    from ccscore_export.cli import app

    train_path, val_path = splits
    with np.load(train_path) as data:
        arrays = dict(data)
    arrays["label"] = arrays["label"].copy()
    arrays["label"][-2:] = 3
    avif_path = tmp_path / "with-avif.npz"
    np.savez(avif_path, **arrays)
    refused = CliRunner().invoke(app, ["train", "--train", str(avif_path), "--val", str(val_path), "--out",
                                       str(tmp_path / "run"), "--labels", "clean,jpeg,webp", "--epochs", "1"])
    assert refused.exit_code == 2, refused.output
    assert "2 tiles are labelled avif, which the head (clean,jpeg,webp) does not have" in refused.output
    assert not list((tmp_path / "run").glob("cache/features-*"))


def test_a_head_without_avif_learns_jpeg_xl_tiles_under_its_own_index(splits, tmp_path):
    """`--labels clean,jpeg,webp,jxl`: JPEG XL tiles (code 4 in tile sets) are the head's class 3, not an index
    past its end."""
    from ccscore_export.labels import LABELS
    from ccscore_export.model import ArtifactDetector, DetectorConfig
    from ccscore_export.train import load_split

    train_path, _ = splits
    with np.load(train_path) as data:
        arrays = dict(data)
    arrays["label"] = arrays["label"].copy()
    arrays["label"][-3:] = LABELS.index("jxl")
    jxl_path = tmp_path / "with-jxl.npz"
    np.savez(jxl_path, **arrays)
    labels = ("clean", "jpeg", "webp", "jxl")
    model = ArtifactDetector(DetectorConfig(labels=labels))
    split = load_split(jxl_path, model.encoder, tmp_path / "cache", labels)
    assert split["label"][-3:].tolist() == [3, 3, 3]
    assert np.array_equal(split["label"][:-3], arrays["label"][:-3])  # clean, jpeg, webp keep their codes
