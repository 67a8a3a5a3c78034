"""Shared fixtures: models exported on the fly, images drawn on the fly (no downloads)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

REPO = Path(__file__).resolve().parents[1]
BUNDLED_MODEL = REPO / "models" / "ccscore-detector.onnx"

# Runs Python with chosen top-level packages made unimportable, as on a machine that lacks them.
BLOCK_IMPORTS = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {blocked!r}:
            raise ImportError('blocked for this test: ' + name)
sys.meta_path.insert(0, _Block())
"""


def run_python(code: str, *args: str, blocked: tuple[str, ...] = (), timeout: int = 120) -> subprocess.CompletedProcess:
    prelude = BLOCK_IMPORTS.format(blocked=set(blocked)) if blocked else ""
    return subprocess.run([sys.executable, "-c", prelude + code, *args], capture_output=True, text=True,
                          timeout=timeout)


def run_cli(*args: str, blocked: tuple[str, ...] = ("torch",), timeout: int = 120) -> subprocess.CompletedProcess:
    """Runs the `ccscore` command as a user would, with torch unimportable (the runtime must not need it)."""
    return run_python("from ccscore.cli import main; main(sys.argv[1:])", *args, blocked=blocked, timeout=timeout)


def cli_records_as_scored_here(scorer, folder: Path, workers: str, details_key: str) -> dict[str, dict]:
    """`ccscore FOLDER --jsonl --details --workers W` run as a user would, its records by file name, each checked
    against `scorer` in this process: the same label, evidence, quality and `details[details_key]`."""
    import json

    done = run_cli(str(folder), "--jsonl", "--details", "--workers", workers, "--device", "cpu")
    assert done.returncode == 0, done.stderr
    records = {r["path"].rsplit("/", 1)[-1]: r for r in map(json.loads, done.stdout.splitlines())}
    for name, record in records.items():
        expected = scorer.score(folder / name).to_dict(with_details=True)
        assert {k: record[k] for k in ("label", "evidence", "quality")} == \
            {k: expected[k] for k in ("label", "evidence", "quality")}
        assert record["details"][details_key] == expected["details"][details_key]
    return records


def assert_broken_bundled_network_fails_in_one_line(monkeypatch, tmp_path, module, file_attribute: str, load,
                                                   texts: list[str], message: str, scorer_attribute: str) -> None:
    """A fitted network shipped beside the runtime (its JSON at `module.file_attribute`, read by `load`), written as
    each of the broken `texts`, is a one-line ModelError saying `message`, also from a Scorer with the bundled model;
    a Scorer of another model file goes on without it (`scorer_attribute` None)."""
    from ccscore import Scorer
    from ccscore.errors import ModelError
    from ccscore.model_info import default_model_path

    for text in texts:
        path = tmp_path / "network.json"
        path.write_text(text)
        monkeypatch.setattr(module, file_attribute, path)
        with pytest.raises(ModelError, match=message) as error:
            load()
        assert "\n" not in str(error.value)
        with pytest.raises(ModelError, match=message):
            Scorer(device="cpu")
    other = tmp_path / "same-weights-elsewhere.onnx"
    other.write_bytes(default_model_path().read_bytes())
    assert getattr(Scorer(other, device="cpu"), scorer_attribute) is None  # another model goes on without it


def draw_art(seed: int, size: tuple[int, int] = (384, 320), sky: Optional[np.ndarray] = None) -> Image.Image:
    """A small flat-shaded illustration: fills, outlines over a gradient (or the `sky` given, uint8 [h, w, 3]),
    slight blur (anti-aliasing)."""
    rng = np.random.default_rng(seed)
    w, h = size
    if sky is None:
        yy, xx = np.mgrid[0:h, 0:w]
        sky = np.stack([120 + 100 * yy / h, 160 + 60 * xx / w, 230 - 40 * yy / h], -1).clip(0, 255).astype(np.uint8)
    im = Image.fromarray(sky)
    d = ImageDraw.Draw(im)
    for _ in range(25):
        x0, y0 = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
        x1, y1 = x0 + int(rng.integers(10, w // 2)), y0 + int(rng.integers(10, h // 2))
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        shape = d.ellipse if rng.random() < 0.5 else d.rectangle
        shape([x0, y0, x1, y1], fill=fill, outline=(20, 20, 30), width=int(rng.integers(1, 5)))
    return im.filter(ImageFilter.GaussianBlur(0.6))


def compress(im: Image.Image, fmt: str, quality: int, **options) -> Image.Image:
    """`im` saved as `fmt` at `quality` (with Pillow's other save `options`, e.g. subsampling: 0 is 4:4:4, 2 is
    4:2:0) and decoded again."""
    buf = io.BytesIO()
    im.save(buf, fmt, quality=quality, **options)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def resized(im: Image.Image, scale: float, kernel=Image.BICUBIC) -> np.ndarray:
    """`im` resized by `scale` (each side rounded) with a Pillow kernel."""
    return np.asarray(im.resize((round(im.width * scale), round(im.height * scale)), kernel))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A detector with an untrained head, exported and validated through the real export path."""
    from ccscore_export.detector_export import export_detector, save_checkpoint
    from ccscore_export.model import ArtifactDetector

    import torch

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny_model")
    save_checkpoint(folder / "tiny.pt", ArtifactDetector())
    export_detector(folder / "tiny.pt", folder / "tiny.onnx")
    return folder / "tiny.onnx"


@pytest.fixture(scope="session")
def image_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("images")
    clean = draw_art(1)
    files = {
        "clean": folder / "clean.png",
        "jpeg": folder / "jpeg-q60.png",
        "webp": folder / "webp-q60.png",
        "small": folder / "small.png",
    }
    clean.save(files["clean"])
    compress(clean, "JPEG", 60).save(files["jpeg"])
    compress(clean, "WEBP", 60).save(files["webp"])
    clean.resize((40, 30)).save(files["small"])
    return files
