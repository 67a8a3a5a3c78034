"""Import a CityClassifiers checkpoint (city96's CLIP classifiers) and export it to one ccscore ONNX graph.

A CityClassifiers model is a small `PredictorModel` head (`.safetensors`, plus a `.config.json` with its
labels) on top of the image embeddings of `openai/clip-vit-large-patch14-336`. The exported graph holds the
whole path from uint8 pixels to class probabilities: CLIP's normalisation (from `preprocessor_config.json`),
the CLIP vision tower with its visual projection, and the head. The reference's image preparation (five
crops of large images, CLIPImageProcessor's resize and centre crop) is the runtime's `city96_fivecrop`
tiling strategy, named with its parameters in the model's metadata.

Nothing is downloaded: the CLIP checkpoint is a local Hugging Face folder.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image
from torch import nn

from . import __version__
from .onnx_export import PIXELS, PROBS, IOSpec, export_graph, producer_commit, validate_graph, write_metadata

TILING = "city96_fivecrop"
FP16_TOLERANCE = 1e-2  # fp16 CLIP tower vs the fp32 torch model, max |diff| on probabilities
RESAMPLE_NAMES = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}


class ResBlock(nn.Module):
    """The reference's linear block with a residual: ReLU(long(x) + x)."""

    def __init__(self, ch: int):
        super().__init__()
        self.join = nn.ReLU()
        self.long = nn.Sequential(nn.Linear(ch, ch), nn.LeakyReLU(0.1), nn.Linear(ch, ch), nn.LeakyReLU(0.1),
                                  nn.Linear(ch, ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.join(self.long(x) + x)


class PredictorModel(nn.Module):
    """city96's `PredictorModel` (classifier form), same layer order and state-dict keys as the reference."""

    def __init__(self, features: int = 768, outputs: int = 2, hidden: int = 1024):
        super().__init__()
        if outputs < 2:
            raise ValueError("only classifier heads (outputs >= 2, softmax) are supported, not aesthetic scorers")
        self.features, self.outputs, self.hidden = features, outputs, hidden
        self.up = nn.Sequential(nn.Linear(features, hidden), ResBlock(ch=hidden))
        self.down = nn.Sequential(nn.Linear(hidden, 128), nn.Linear(128, 64), nn.Dropout(0.1), nn.LeakyReLU(),
                                  nn.Linear(64, 32), nn.Linear(32, outputs))
        self.out = nn.Softmax(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.down(self.up(x)))


@dataclass(frozen=True)
class Preprocessing:
    """What CLIPImageProcessor does, read from `preprocessor_config.json`."""

    shortest_edge: int
    crop: int
    resample: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    rescale: float

    @classmethod
    def load(cls, path: Path) -> "Preprocessing":
        cfg = json.loads(path.read_text())
        size, crop = cfg.get("size", 224), cfg.get("crop_size", 224)
        if isinstance(size, dict):
            if "shortest_edge" not in size:
                raise ValueError(f"{path}: only size.shortest_edge is supported, got {size}")
            size = size["shortest_edge"]
        if isinstance(crop, dict):
            if crop.get("height") != crop.get("width"):
                raise ValueError(f"{path}: only square crops are supported, got {crop}")
            crop = crop["height"]
        for flag in ("do_resize", "do_center_crop", "do_rescale", "do_normalize"):
            if not cfg.get(flag, True):
                raise ValueError(f"{path}: {flag}=false is not supported")
        resample = cfg.get("resample", 3)
        if resample not in RESAMPLE_NAMES:
            raise ValueError(f"{path}: unknown resample {resample!r}")
        return cls(shortest_edge=int(size), crop=int(crop), resample=RESAMPLE_NAMES[resample],
                   mean=tuple(float(v) for v in cfg.get("image_mean", [0.48145466, 0.4578275, 0.40821073])),
                   std=tuple(float(v) for v in cfg.get("image_std", [0.26862954, 0.26130258, 0.27577711])),
                   rescale=float(cfg.get("rescale_factor", 1 / 255)))

    def tiling_params(self) -> dict:
        return {"shortest_edge": self.shortest_edge, "crop": 2 * self.shortest_edge, "long_side_limit": 1536,
                "resize_to": 1536, "presize_resample": "bilinear", "resample": self.resample}


class City96Graph(nn.Module):
    """uint8 [N, T, T, 3] -> normalise -> CLIP vision tower + projection -> head -> probs [N, C]."""

    def __init__(self, vision: nn.Module, head: PredictorModel, prep: Preprocessing):
        super().__init__()
        self.vision, self.head = vision, head
        self.register_buffer("mean", torch.tensor(prep.mean, dtype=torch.float32).view(1, 1, 1, 3))
        self.register_buffer("std", torch.tensor(prep.std, dtype=torch.float32).view(1, 1, 1, 3))
        self.rescale = prep.rescale

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = (pixels.to(torch.float32) * self.rescale - self.mean) / self.std
        x = x.permute(0, 3, 1, 2).to(self.vision.dtype)
        emb = self.vision(pixel_values=x).image_embeds
        return self.head(emb.to(torch.float32))  # the reference runs its head in fp32 whatever CLIP's dtype


def read_labels(config: Optional[Path], outputs: int) -> tuple[list[str], dict]:
    """Labels by output index, lowercased, `Pass` named `clean` (index 0 is the reference's default class)."""
    data = json.loads(config.read_text()) if config else {}
    raw = data.get("labels") or {}
    labels = []
    for k in range(outputs):
        name = str(raw.get(str(k), "pass" if k == 0 else k)).strip().lower()
        labels.append("clean" if name == "pass" else name)
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels are not unique: {labels}")
    return labels, data


def load_head(path: Path) -> PredictorModel:
    """A PredictorModel with every size read from its weights."""
    from safetensors.torch import load_file

    sd = load_file(str(path))
    try:
        hidden, features = sd["up.0.weight"].shape
        outputs = int(sd["down.5.bias"].shape[0])
    except KeyError as exc:
        raise ValueError(f"{path} is not a CityClassifiers PredictorModel (no {exc.args[0]})") from None
    head = PredictorModel(features=int(features), outputs=outputs, hidden=int(hidden))
    head.load_state_dict(sd)  # strict: a different layout fails here, not silently
    return head.eval()


def load_clip_vision(clip_dir: Path, dtype: torch.dtype = torch.float32) -> nn.Module:
    from transformers import CLIPConfig, CLIPVisionConfig, CLIPVisionModelWithProjection

    if not (clip_dir / "config.json").is_file():
        raise FileNotFoundError(f"{clip_dir} is not a Hugging Face CLIP folder (no config.json)")
    if json.loads((clip_dir / "config.json").read_text()).get("model_type") == "clip":
        # A full CLIPModel folder: the projection size lives on the top-level config, which the vision
        # sub-config does not always repeat.
        full = CLIPConfig.from_pretrained(str(clip_dir), local_files_only=True)
        vision_config = full.vision_config
        vision_config.projection_dim = full.projection_dim
    else:
        vision_config = CLIPVisionConfig.from_pretrained(str(clip_dir), local_files_only=True)
    from transformers.utils import logging as hf_logging

    # A full CLIPModel folder also holds the text tower: its weights are expected to go unused, unreported.
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model = CLIPVisionModelWithProjection.from_pretrained(str(clip_dir), config=vision_config, dtype=dtype,
                                                              attn_implementation="eager", local_files_only=True)
    finally:
        hf_logging.set_verbosity(verbosity)
    return model.eval()


def validation_batches(size: int, seed: int = 0) -> list[np.ndarray]:
    """Noise, smooth colour fields and a JPEG-compressed one; batches of several sizes (dynamic batch)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    smooth = []
    for k in range(3):
        base = 127 + 110 * np.sin(xx / (9 + 11 * k)) * np.cos(yy / (13 + 5 * k))
        smooth.append(np.stack([base, base[::-1], base.T], -1).clip(0, 255).astype(np.uint8))
    buf = io.BytesIO()
    Image.fromarray(smooth[0]).save(buf, "JPEG", quality=30)
    smooth.append(np.asarray(Image.open(buf).convert("RGB")))
    return [rng.integers(0, 256, (2, size, size, 3), dtype=np.uint8), np.stack(smooth),
            np.full((1, size, size, 3), 128, np.uint8)]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def export_city96(clip_dir: Path, head_path: Path, output: Path, config: Optional[Path] = None,
                  fp16: bool = False, name: Optional[str] = None, version: Optional[str] = None) -> dict[str, float]:
    """Exports CLIP vision + head as one graph, validates it against torch (raises past tolerance), stamps metadata.

    fp16: the CLIP tower's weights and arithmetic in fp16 (input stays uint8, probs fp32, head fp32); it is
    validated against the fp32 torch model with tolerance `FP16_TOLERANCE`.
    """
    clip_dir, head_path = Path(clip_dir), Path(head_path)
    if config is None:  # the reference names it NAME.config.json beside NAME.safetensors
        guess = head_path.with_name(head_path.name.removesuffix(".safetensors") + ".config.json")
        config = guess if guess.is_file() else None
    prep_path = clip_dir / "preprocessor_config.json"
    if not prep_path.is_file():
        raise FileNotFoundError(f"{clip_dir} has no preprocessor_config.json")
    prep = Preprocessing.load(prep_path)
    head = load_head(head_path)
    labels, cfg = read_labels(config, head.outputs)

    reference = City96Graph(load_clip_vision(clip_dir), head, prep).eval()
    projection = reference.vision.config.projection_dim
    if projection != head.features:
        raise ValueError(f"head expects {head.features} features, the CLIP projection gives {projection}")
    image_size = reference.vision.config.image_size
    if prep.crop != image_size:
        raise ValueError(f"preprocessor crop {prep.crop} differs from the CLIP image size {image_size}")

    if fp16:
        exported = City96Graph(load_clip_vision(clip_dir, torch.float16), head, prep).eval()
        probs_spec = IOSpec(PROBS.name, PROBS.axes, tolerance=FP16_TOLERANCE)
    else:
        exported, probs_spec = reference, PROBS
    example = torch.zeros(2, prep.crop, prep.crop, 3, dtype=torch.uint8)
    export_graph(exported, example, output, inputs=[PIXELS], outputs=[probs_spec])
    # The reference is always the fp32 torch model: an fp16 graph is judged against what users ran before.
    diffs = validate_graph(reference, output, validation_batches(prep.crop), outputs=[probs_spec])

    model_name = name or (f"{cfg['name']}-{cfg['rev']}" if cfg.get("name") and cfg.get("rev")
                          else head_path.name.removesuffix(".safetensors"))
    write_metadata(output, {
        "name": model_name,
        "version": version or str(cfg.get("rev", "0")).lstrip("v") or "0",
        "labels": labels,
        "tile_size": prep.crop,
        "tiling": TILING,
        "tiling_params": prep.tiling_params(),
        "aggregation": "mean",
        "threshold": 0.5,
        "outputs": [PROBS.name],
        "source": "CityClassifiers (city96) PredictorModel on CLIP image embeddings",
        "clip": clip_dir.resolve().name,
        "head_sha256": _sha256(head_path),
        "precision": "fp16" if fp16 else "fp32",
        "validation_max_abs_diff": diffs,
        "validation_tolerance": probs_spec.tolerance,
        "producer": f"ccscore-export {__version__} ({producer_commit()})",
    })
    return diffs
