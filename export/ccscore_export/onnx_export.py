"""Export a PyTorch scorer to ONE self-describing ONNX graph, then prove the graph matches torch.

Inputs and outputs are declared once (`IOSpec`); the same specs drive dynamic axes, output names and the
validation tolerances. A failed tolerance raises `ExportValidationError`: a graph that disagrees with its
source model is never written out as a success.
"""

from __future__ import annotations

import json
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
import torch

OPSET = 18


@dataclass(frozen=True)
class IOSpec:
    name: str
    axes: tuple[str, ...]  # symbolic names; "batch" is dynamic
    tolerance: float = 1e-4  # max |onnx - torch| allowed (outputs only)


PIXELS = IOSpec("pixels", ("batch", "height", "width", "channels"))
PROBS = IOSpec("probs", ("batch", "labels"), tolerance=1e-4)
QUALITY = IOSpec("quality", ("batch", "one"), tolerance=0.05)  # 0-100 scale: 5e-4 relative
# Near-zero shares per grid phase (0-1); the runtime only ranks them, so 1e-4 leaves every argmax intact
# except exact near-ties, which carry no grid evidence anyway.
PHASES = IOSpec("phases", ("batch", "phases"), tolerance=1e-4)


class ExportValidationError(RuntimeError):
    """The exported graph does not reproduce the torch model within tolerance."""


def producer_commit() -> str:
    """The git commit the producing code came from, or 'unknown' outside a checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=10)
        commit = out.stdout.strip() or "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=Path(__file__).parent, timeout=10).stdout.strip()
        return commit + ("-dirty" if dirty and commit != "unknown" else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def write_metadata(path: Path, metadata: dict[str, object]) -> None:
    """Stores metadata as string props; non-string values are JSON so any runtime can parse them."""
    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in metadata.items():
        prop = model.metadata_props.add()
        prop.key = key
        prop.value = value if isinstance(value, str) else json.dumps(value)
    onnx.save(model, str(path))


def export_graph(model: torch.nn.Module, example: torch.Tensor, path: Path, inputs: Sequence[IOSpec],
                 outputs: Sequence[IOSpec]) -> None:
    model.eval()
    dynamic_axes = {
        spec.name: {i: axis for i, axis in enumerate(spec.axes) if axis == "batch"} for spec in (*inputs, *outputs)
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter announces its own deprecation; the graph it writes is validated below.
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), input_names=[s.name for s in inputs],
                          output_names=[s.name for s in outputs], dynamic_axes=dynamic_axes,
                          opset_version=OPSET, dynamo=False)
    onnx.checker.check_model(str(path))


def validate_graph(model: torch.nn.Module, path: Path, batches: Sequence[np.ndarray],
                   outputs: Sequence[IOSpec], input_name: str = PIXELS.name) -> dict[str, float]:
    """Runs every batch through torch and onnxruntime (CPU); returns max |diff| per output, raises past tolerance."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = {spec.name: 0.0 for spec in outputs}
    model.eval()
    for batch in batches:
        with torch.no_grad():
            expected = model(torch.from_numpy(batch))
        expected = expected if isinstance(expected, (tuple, list)) else (expected,)
        got = session.run([s.name for s in outputs], {input_name: batch})
        for spec, e, g in zip(outputs, expected, got):
            worst[spec.name] = max(worst[spec.name], float(np.max(np.abs(e.numpy() - g))))
    failures = [f"{name}: max |diff| {diff:.3g} > {spec.tolerance:g}"
                for spec in outputs for name, diff in worst.items() if name == spec.name and diff > spec.tolerance]
    if failures:
        raise ExportValidationError(f"{path.name} disagrees with torch: " + "; ".join(failures))
    return worst
