"""Choosing execution providers and creating sessions that say what they really got."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence, Union

from .errors import ModelError, OnnxRuntimeMissing

Device = Union[str, Sequence[str]]
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
DEVICES = ("auto", "cpu", "cuda")


def import_onnxruntime():
    """Imports onnxruntime or raises `OnnxRuntimeMissing` (never exits the process)."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise OnnxRuntimeMissing() from exc
    return onnxruntime


def requested_providers(device: Device, available: Sequence[str]) -> list[str]:
    """Maps auto/cpu/cuda or an explicit provider list to the list passed to onnxruntime."""
    if not isinstance(device, str):
        return list(device)
    if device == "cpu":
        return [CPU]
    if device == "cuda":
        return [CUDA, CPU]
    if device == "auto":
        return [CUDA, CPU] if CUDA in available else [CPU]
    raise ValueError(f"unknown device {device!r}: use one of {', '.join(DEVICES)} or a list of providers")


@dataclass
class Session:
    session: object  # onnxruntime.InferenceSession
    requested: list[str]
    active: list[str]

    @property
    def fallback_note(self) -> str | None:
        """A one-line note when a requested accelerator was dropped (onnxruntime only logs this)."""
        dropped = [p for p in self.requested if p != CPU and p not in self.active]
        if not dropped:
            return None
        return f"{', '.join(dropped)} requested but not usable here; running on {', '.join(self.active)}"


def create_session(model_path: str, device: Device = "auto", intra_op_threads: int | None = None) -> Session:
    ort = import_onnxruntime()
    available = ort.get_available_providers()
    requested = requested_providers(device, available)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # provider fallbacks are reported by `fallback_note`, not stderr noise
    if intra_op_threads is None:
        intra_op_threads = int(os.environ.get("CCSCORE_THREADS", "0"))
    options.intra_op_num_threads = intra_op_threads
    try:
        session = ort.InferenceSession(model_path, options, providers=[p for p in requested if p in available] or [CPU])
    except Exception as exc:  # onnxruntime raises several unrelated types for unreadable models
        raise ModelError(f"cannot load model {model_path}: {str(exc).splitlines()[0][:300]}") from None
    return Session(session, requested, list(session.get_providers()))
