"""The model contract, read from an ONNX file's metadata: everything the runtime needs to drive a model."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ModelError

DEFAULT_MODEL_NAME = "ccscore-detector.onnx"
REQUIRED_KEYS = ("name", "version", "labels", "tile_size", "tiling")


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    name: str
    version: str
    labels: tuple[str, ...]
    tile_size: int
    tiling: str
    tiling_params: dict = field(default_factory=dict)
    aggregation: str = "mean"
    threshold: float = 0.5
    outputs: tuple[str, ...] = ("probs",)
    # {"first_tiles": k, "margin": m}: see scorer.EarlyStop. Absent: every chosen tile is scored.
    early_stop: dict = field(default_factory=dict)
    # Grid periods of the `phases` output, in its order (ccscore.evidence); empty: the model has none.
    phase_grids: tuple[int, ...] = ()
    metadata: dict = field(default_factory=dict)

    def metadata_json(self, key: str, default=None):
        """A metadata value parsed as JSON (absent: `default`)."""
        if key not in self.metadata:
            return default
        try:
            return json.loads(self.metadata[key])
        except json.JSONDecodeError:
            raise ModelError(f"{self.path}: metadata {key!r} is not valid JSON") from None

    @property
    def has_quality(self) -> bool:
        return "quality" in self.outputs

    @classmethod
    def from_metadata(cls, path: Path, props: dict[str, str]) -> "ModelInfo":
        missing = [k for k in REQUIRED_KEYS if k not in props]
        if missing:
            raise ModelError(f"{path} is not a ccscore model: metadata lacks {', '.join(missing)}")

        def parsed(key: str, default=None):
            if key not in props:
                return default
            try:
                return json.loads(props[key])
            except json.JSONDecodeError:
                return props[key]

        return cls(
            path=path,
            name=props["name"],
            version=str(props["version"]),
            labels=tuple(parsed("labels")),
            tile_size=int(parsed("tile_size")),
            tiling=props["tiling"],
            tiling_params=parsed("tiling_params", {}) or {},
            aggregation=props.get("aggregation", "mean"),
            threshold=float(parsed("threshold", 0.5)),
            outputs=tuple(parsed("outputs", ["probs"])),
            early_stop=parsed("early_stop", {}) or {},
            phase_grids=tuple(int(n) for n in parsed("phase_grids", []) or []),
            metadata=dict(props),
        )


def default_model_path() -> Path:
    """The bundled model: inside the installed wheel, or the checkout's models/ folder in development."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "models" / DEFAULT_MODEL_NAME, here.parents[1] / "models" / DEFAULT_MODEL_NAME):
        if candidate.is_file():
            return candidate
    raise ModelError(f"the bundled model {DEFAULT_MODEL_NAME} is missing from this installation; pass --model PATH")
