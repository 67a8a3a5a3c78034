"""The model contract, read from an ONNX file's metadata and checked against its graph at load.

Everything a model asks of the runtime is validated here, before the first image: a wrong type, a missing key,
a tiling the runtime does not know, or a size that would make the runtime allocate without bound is a
`ModelError` (one line) at load, never a traceback at the first batch. Checks read metadata and the graph's
declared inputs and outputs only; they run nothing through the model.
"""

from __future__ import annotations

import inspect
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from .errors import ModelError, one_line
from .tiling import PIL_RESAMPLE, STRATEGIES, make_tiles

DEFAULT_MODEL_NAME = "ccscore-detector.onnx"
REQUIRED_KEYS = ("name", "version", "labels", "tile_size", "tiling")
PROBS, QUALITY, PHASES = "probs", "quality", "phases"
KNOWN_OUTPUTS = (PROBS, QUALITY, PHASES)
FLOAT_TYPES = ("tensor(float)", "tensor(float16)", "tensor(double)")

# Bounds on what metadata may ask for. Tile pixels are allocated per tile (T x T x 3 bytes, up to max_tiles per
# image, a batch of them per run) and images are resized to the city96 sizes: without bounds a model asking for
# a 30,000 px tile allocates until memory runs out. The ranges hold every sensible model (CLIP-style models use
# 224 to 518 px) with room to spare.
TILE_SIZE_RANGE = (16, 2048)
MAX_TILES_RANGE = (1, 256)
IMAGE_SIDE_RANGE = (16, 4096)  # any side a tiling resizes or crops an image to

# Every keyword parameter of every tiling strategy, with what it may hold: (int|float, low, high) or the
# allowed strings. A strategy parameter missing here is refused at load (a test keeps this table complete).
TILING_PARAMS: dict[str, tuple] = {
    "max_tiles": (int, *MAX_TILES_RANGE),
    "min_texture": (float, 0.0, 1.0),
    "texture_step": (int, 1, 64),
    "shortest_edge": (int, *IMAGE_SIDE_RANGE),
    "crop": (int, *IMAGE_SIDE_RANGE),
    "long_side_limit": (int, 1, 1 << 20),  # a threshold on the image, not a size allocated
    "resize_to": (int, *IMAGE_SIDE_RANGE),
    "presize_resample": tuple(PIL_RESAMPLE),
    "resample": tuple(PIL_RESAMPLE),
}


def shown(value: Any, limit: int = 60) -> str:
    """A value as an error message shows it: repr, cut short (metadata can hold anything)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def number(what: str, value: Any, kind: type, low: float, high: float) -> int | float:
    """`value` as an int or float within [low, high], or `ValueError` naming `what`. Booleans are not numbers."""
    ok_types = (int,) if kind is int else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_types):
        raise ValueError(f"{what} must be {'an integer' if kind is int else 'a number'}, got {shown(value)}")
    if (isinstance(value, float) and not math.isfinite(value)) or not low <= value <= high:
        raise ValueError(f"{what} must be within [{low}, {high}], got {shown(value)}")
    return kind(value)


def strategy_params(tiling: str) -> dict[str, inspect.Parameter]:
    """A tiling strategy's keyword parameters (all but the image and the tile size)."""
    return dict(list(inspect.signature(STRATEGIES[tiling]).parameters.items())[2:])


def check_tiling_params(tiling: str, params: Any) -> dict:
    """The validated parameters of `tiling`, or `ValueError`."""
    if not isinstance(params, dict):
        raise ValueError(f"tiling_params must be a JSON object, got {shown(params)}")
    accepted = strategy_params(tiling)
    checked = {}
    for key, value in params.items():
        if key not in accepted:
            raise ValueError(f"tiling {shown(tiling)} takes no parameter {shown(key)} (takes {', '.join(accepted)})")
        spec = TILING_PARAMS.get(key)
        if spec is None:
            raise ValueError(f"tiling parameter {shown(key)} has no known bounds in this runtime")
        if value is None and accepted[key].default is None:
            checked[key] = None
        elif isinstance(spec[0], str):
            if value not in spec:
                raise ValueError(f"tiling parameter {key} must be one of {', '.join(spec)}, got {shown(value)}")
            checked[key] = value
        else:
            checked[key] = number(f"tiling parameter {key}", value, *spec)
    return checked


def _labels(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) < 2:
        raise ValueError(f"labels must be a JSON list of at least two names, got {shown(value)}")
    for label in value:
        if not isinstance(label, str) or not label or not label.isprintable():
            raise ValueError(f"labels must be non-empty printable strings, got {shown(label)}")
    duplicates = sorted(label for label, count in Counter(value).items() if count > 1)
    if duplicates:
        raise ValueError(f"labels repeat {shown(', '.join(duplicates))}")
    return tuple(value)


def _outputs(value: Any) -> tuple[str, ...]:
    if not (isinstance(value, list) and all(isinstance(o, str) for o in value) and PROBS in value
            and len(set(value)) == len(value) and set(value) <= set(KNOWN_OUTPUTS)):
        raise ValueError(f"outputs must be a JSON list holding {PROBS!r} and optionally {QUALITY!r} and "
                         f"{PHASES!r}, got {shown(value)}")
    return tuple(o for o in KNOWN_OUTPUTS if o in value)  # the order the runtime reads them in


def _early_stop(value: Any) -> dict:
    if value in (None, {}):
        return {}
    if not isinstance(value, dict) or set(value) != {"first_tiles", "margin"}:
        raise ValueError(f"early_stop must be {{}} or {{\"first_tiles\": k, \"margin\": m}}, got {shown(value)}")
    return {"first_tiles": number("early_stop first_tiles", value["first_tiles"], int, *MAX_TILES_RANGE),
            "margin": number("early_stop margin", value["margin"], float, 0.0, 0.5)}


def _phase_grids(value: Any, outputs: tuple[str, ...]) -> tuple[int, ...]:
    grids = [] if value is None else value
    if not isinstance(grids, list) or len(grids) > 4:
        raise ValueError(f"phase_grids must be a JSON list of at most 4 grid periods, got {shown(value)}")
    checked = tuple(number("phase_grids period", n, int, 2, 32) for n in grids)
    if (PHASES in outputs) != bool(checked):
        raise ValueError(f"phase_grids {shown(value)} must name the grids of the {PHASES!r} output, "
                         f"and only a model with that output has them")
    return checked


def _grid_gate(value: Any, labels: tuple[str, ...], grids: tuple[int, ...]) -> dict:
    """{"periods": {lossy label: grid period}, "center" (a number, or {label: number} for each label of periods),
    "slope", "weak"} (see scorer.GridGate), or {}."""
    if value in (None, {}):
        return {}
    if not grids:
        raise ValueError("grid_gate needs a model with a phases output")
    if not isinstance(value, dict) or set(value) != {"periods", "center", "slope", "weak"}:
        raise ValueError(f"grid_gate must be {{}} or hold periods, center, slope and weak, got {shown(value)}")
    periods = value["periods"]
    if not isinstance(periods, dict) or not set(periods) <= set(labels) - {"clean"}:
        raise ValueError(f"grid_gate periods must map lossy labels to grid periods, got {shown(periods)}")
    for label, n in periods.items():
        if n not in grids:
            raise ValueError(f"grid_gate period {shown(n)} for {label} is not one of phase_grids {list(grids)}")
    center = value["center"]  # one for every gated label, or one per label
    if isinstance(center, dict):
        if set(center) != set(periods):
            raise ValueError(f"grid_gate center must name exactly the labels of periods, got {shown(center)}")
        center = {label: number(f"grid_gate center of {label}", c, float, 0.0, 1.0) for label, c in center.items()}
    else:
        center = number("grid_gate center", center, float, 0.0, 1.0)
    return {"periods": dict(periods), "center": center,
            "slope": number("grid_gate slope", value["slope"], float, 0.0, 1000.0),
            "weak": number("grid_gate weak", value["weak"], float, 0.0, 1.0)}


def _string(what: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {shown(value)}")
    return value


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
    outputs: tuple[str, ...] = (PROBS,)
    # {"first_tiles": k, "margin": m}: see scorer.EarlyStop. Absent: every chosen tile is scored.
    early_stop: dict = field(default_factory=dict)
    # Grid periods of the `phases` output, in its order (ccscore.evidence); empty: the model has none.
    phase_grids: tuple[int, ...] = ()
    # The image-level decision on grid agreement (scorer.GridGate); empty: tile probabilities alone decide.
    grid_gate: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)

    @property
    def has_quality(self) -> bool:
        return QUALITY in self.outputs

    @classmethod
    def from_metadata(cls, path: Path, props: dict[str, str]) -> "ModelInfo":
        """Parses and validates the metadata; `ModelError` (one line, naming the key) for anything unusable."""
        missing = [k for k in REQUIRED_KEYS if k not in props]
        if missing:
            raise ModelError(f"{path} is not a ccscore model: metadata lacks {', '.join(missing)}")

        def parsed(key: str, default=None):
            """JSON values; a value that is not JSON is the plain string (names, strategy names)."""
            if key not in props:
                return default
            try:
                return json.loads(props[key])
            except (ValueError, RecursionError):  # not JSON, too deeply nested, integers too long to read
                return props[key]

        key = ""
        try:
            key = "tiling"
            tiling = _string("tiling", props["tiling"])
            if tiling not in STRATEGIES:
                raise ValueError(f"tiling {shown(tiling)} is unknown to this runtime "
                                 f"(knows {', '.join(STRATEGIES)})")
            key = "tiling_params"
            tiling_params = check_tiling_params(tiling, parsed("tiling_params", {}))
            key = "aggregation"
            aggregation = _string("aggregation", props.get("aggregation", "mean"))
            key = "labels"
            labels = _labels(parsed("labels"))
            key = "tile_size"
            tile_size = number("tile_size", parsed("tile_size"), int, *TILE_SIZE_RANGE)
            key = "threshold"
            threshold = number("threshold", parsed("threshold", 0.5), float, 0.0, 1.0)
            key = "outputs"
            outputs = _outputs(parsed("outputs", [PROBS]))
            key = "early_stop"
            early_stop = _early_stop(parsed("early_stop"))
            key = "phase_grids"
            phase_grids = _phase_grids(parsed("phase_grids"), outputs)
            key = "grid_gate"
            grid_gate = _grid_gate(parsed("grid_gate"), labels, phase_grids)
            if grid_gate and tiling != "content":  # phases are read in image coordinates: native-resolution tiles
                raise ValueError(f"a grid gate needs the content tiling (tiles at native resolution), not {tiling}")
            key = "name"
            name = _string("name", props["name"])
            key = "version"
            version = _string("version", props["version"])
        except ValueError as exc:
            raise ModelError(f"{path}: bad model metadata {key}: {exc}") from None
        info = cls(path=path, name=name, version=version, labels=labels, tile_size=tile_size, tiling=tiling,
                   tiling_params=tiling_params, aggregation=aggregation, threshold=threshold, outputs=outputs,
                   early_stop=early_stop, phase_grids=phase_grids, grid_gate=grid_gate, metadata=dict(props))
        info.check_tiling()
        return info

    def check_tiling(self) -> None:
        """Tiles a 1 x 1 image (a few ms at most, the sizes being bounded): catches what no single parameter
        shows, such as a city96 shortest_edge below the tile size."""
        import numpy as np

        try:
            tiles = make_tiles(np.zeros((1, 1, 3), np.uint8), self.tiling, self.tile_size, self.tiling_params)
        except Exception as exc:  # any strategy's refusal is the model's fault, reported in one line
            raise ModelError(f"{self.path}: tiling {self.tiling} refuses the model's parameters: "
                             f"{one_line(exc)}") from None
        if tiles.pixels.dtype != np.uint8 or tiles.pixels.shape[1:] != (self.tile_size, self.tile_size, 3):
            raise ModelError(f"{self.path}: tiling {self.tiling} makes tiles of shape {tiles.pixels.shape[1:]}, "
                             f"not the model's {self.tile_size} x {self.tile_size} x 3")

    def check_graph(self, inputs: Sequence, outputs: Sequence) -> tuple[str, list[str]]:
        """Checks the graph's declared inputs and outputs (onnxruntime NodeArgs: name, type, shape) against
        the metadata; returns the input name and the output names to run, in the order the runtime reads them."""
        where = f"{self.path}: the graph's"
        if len(inputs) != 1:
            raise ModelError(f"{where} inputs are {', '.join(i.name for i in inputs) or 'none'}; "
                             f"a ccscore model takes one input, uint8 tiles [N, T, T, 3]")
        pixels = inputs[0]
        expected: list[Optional[int]] = [None, self.tile_size, self.tile_size, 3]
        if pixels.type != "tensor(uint8)":
            raise ModelError(f"{where} input {pixels.name} is {pixels.type}, not tensor(uint8)")
        if not _shape_fits(pixels.shape, expected):
            raise ModelError(f"{where} input {pixels.name} has shape {_shape_text(pixels.shape)}, not "
                             f"[N, {self.tile_size}, {self.tile_size}, 3] (N dynamic) as the metadata's tile_size says")
        declared = {o.name: o for o in outputs}
        for name in self.outputs:
            if name not in declared:
                raise ModelError(f"{where} outputs are {', '.join(declared)}: the metadata names {name}, "
                                 f"which it lacks")
            out = declared[name]
            if out.type not in FLOAT_TYPES:
                raise ModelError(f"{where} output {name} is {out.type}, not a float tensor")
        probs_shape = declared[PROBS].shape
        if not _shape_fits(probs_shape, [None, len(self.labels)]):
            raise ModelError(f"{where} output probs has shape {_shape_text(probs_shape)}, not [N, "
                             f"{len(self.labels)}] for the metadata's {len(self.labels)} labels")
        if self.has_quality:
            shape = declared[QUALITY].shape
            if not (_shape_fits(shape, [None]) or _shape_fits(shape, [None, 1])):
                raise ModelError(f"{where} output quality has shape {_shape_text(shape)}, not [N] or [N, 1]")
        if PHASES in self.outputs:
            width = 4 * sum(n * n for n in self.phase_grids)  # four quadrants per grid (ccscore.evidence)
            shape = declared[PHASES].shape
            if not _shape_fits(shape, [None, width]):
                raise ModelError(f"{where} output phases has shape {_shape_text(shape)}, not [N, {width}] for "
                                 f"phase_grids {list(self.phase_grids)}")
        return pixels.name, list(self.outputs)


def _shape_fits(shape: Any, expected: list[Optional[int]]) -> bool:
    """Whether a declared shape fits `expected`: dims given there must match (a symbolic dim matches any);
    dims given as None must be dynamic, since the runtime feeds batches of any size."""
    if shape is None:
        return True  # no shape declared: checked on the outputs themselves
    if len(shape) != len(expected):
        return False
    for dim, want in zip(shape, expected):
        static = isinstance(dim, int)
        if (want is None and static) or (want is not None and static and dim != want):
            return False
    return True


def _shape_text(shape: Any) -> str:
    return "[" + ", ".join("N" if not isinstance(d, int) else str(d) for d in shape) + "]" if shape else "unknown"


def default_model_path() -> Path:
    """The bundled model: inside the installed wheel, or the checkout's models/ folder in development."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "models" / DEFAULT_MODEL_NAME, here.parents[1] / "models" / DEFAULT_MODEL_NAME):
        if candidate.is_file():
            return candidate
    raise ModelError(f"the bundled model {DEFAULT_MODEL_NAME} is missing from this installation; pass --model PATH")
