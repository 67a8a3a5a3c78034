"""Choosing execution providers and creating sessions that say what they really got.

Session tuning (measured with `ccscore bench` and benchmarks/speed.py; see docs/history.md, Speed):
- graph optimisation at ORT_ENABLE_ALL;
- CPU: tiles go through the graph one at a time (CCSCORE_CPU_BATCH, default 1) whatever batch the caller
  hands over: one 128 px tile's intermediates (~7.5 MB) stay in cache, a batch of 64 (~0.5 GB per tensor)
  does not; per tile this is ~1.7x cheaper and peak memory drops from ~2.6 GB to ~0.1 GB;
- intra-op threads: CCSCORE_THREADS if set, else half the cores (at least 1): decode workers take the
  rest, and on 2 cores a second inference thread gained nothing per tile; the ORT pool does not spin-wait
  (CCSCORE_SPIN=1 turns spinning back on), so decode workers sharing the cores are not starved by idle
  inference threads;
- CUDA: cuDNN convolution algorithms chosen by heuristic rather than an exhaustive search for every new
  input shape (the batch dimension varies with the last batch), arena grown only as requested;
- TensorRT: used in "auto" only when its libraries are loadable; engines and timing caches are kept on disk
  so the builds happen once per shape, not once per process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence, Union

from .errors import ModelError, OnnxRuntimeMissing, one_line

Device = Union[str, Sequence[str]]
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
DEVICES = ("auto", "cpu", "cuda", "tensorrt")


def import_onnxruntime():
    """Imports onnxruntime or raises `OnnxRuntimeMissing` (never exits the process)."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise OnnxRuntimeMissing() from exc
    return onnxruntime


# The libraries each GPU provider loads (onnxruntime-gpu >= 1.19 builds for CUDA 12 and cuDNN 9): the short name
# for find_library, then the file names to try.
GPU_LIBRARIES = {
    CUDA: {"cudart": ["libcudart.so.12", "cudart64_12.dll"], "cublas": ["libcublas.so.12", "cublas64_12.dll"],
           "cudnn": ["libcudnn.so.9", "cudnn64_9.dll"]},
    TENSORRT: {"nvinfer": ["libnvinfer.so.10", "libnvinfer.so.8", "libnvinfer.so", "nvinfer_10.dll",
                           "nvinfer.dll"]},
}


def library_loadable(short_name: str, names: Sequence[str]) -> bool:
    import ctypes
    import ctypes.util

    found = ctypes.util.find_library(short_name)
    for name in ([found] if found else []) + list(names):
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return False


def missing_libraries(provider: str, loadable=library_loadable) -> list[str]:
    """The libraries `provider` needs that cannot be loaded here."""
    return [short for short, names in GPU_LIBRARIES.get(provider, {}).items() if not loadable(short, names)]


def tensorrt_loadable() -> bool:
    """Whether TensorRT's runtime library can be loaded: onnxruntime-gpu lists the TensorRT provider even
    where TensorRT is not installed, and then prints a multi-line error on stdout when asked for it."""
    return not missing_libraries(TENSORRT)


def onnxruntime_builds() -> list[str]:
    """The onnxruntime distributions installed ("onnxruntime 1.20.1", "onnxruntime-gpu 1.20.1")."""
    from importlib import metadata

    builds = []
    for dist in ("onnxruntime", "onnxruntime-gpu"):
        try:
            builds.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    return builds


def why_unusable(provider: str, available: Sequence[str], loadable=library_loadable) -> str:
    """Why onnxruntime could not use `provider`, and how to fix it, in one line."""
    if provider not in available:
        builds = onnxruntime_builds()
        have = f"this onnxruntime ({', '.join(builds) or 'unknown build'}) offers only {', '.join(available)}"
        if provider in GPU_LIBRARIES and not any(b.startswith("onnxruntime-gpu ") for b in builds):
            return (f"{have}: CUDA needs onnxruntime-gpu instead (pip uninstall onnxruntime, then "
                    f"pip install 'ccscore[gpu]')")
        return have
    missing = missing_libraries(provider, loadable)
    if missing:
        if provider == TENSORRT:
            return "TensorRT's library (libnvinfer) was not found: install TensorRT 10, or use --device cuda"
        return (f"the CUDA libraries it needs were not found ({', '.join(missing)}): install CUDA 12 and cuDNN 9 "
                f"(or pip install 'onnxruntime-gpu[cuda,cudnn]') and put them on the library path")
    return "onnxruntime could not start it (no GPU or driver? nvidia-smi tells)"


def cuda_provider_installed() -> bool:
    """Whether the installed onnxruntime ships its CUDA provider library (onnxruntime-gpu does), told without
    importing it and in well under a millisecond (package metadata takes ~50 ms to read)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("onnxruntime")
        return spec is not None and spec.origin is not None and any(
            "providers_cuda" in name for name in os.listdir(Path(spec.origin).parent / "capi"))
    except (ImportError, ValueError, OSError):  # none installed, or a broken one: the session says what is wrong
        return False


def surely_cpu(device: Device) -> bool:
    """Whether `device` runs on CPU alone, told without importing onnxruntime (workers are forked first): "cpu",
    or "auto" where onnxruntime has no CUDA provider to choose (TensorRT's needs it too)."""
    if not isinstance(device, str):
        return list(device) == [CPU]
    device = device.lower()
    return device == "cpu" or (device == "auto" and not cuda_provider_installed())


def requested_providers(device: Device, available: Sequence[str]) -> list[str]:
    """Maps auto/cpu/cuda/tensorrt or an explicit provider list to the list passed to onnxruntime."""
    if not isinstance(device, str):
        return list(device)
    device = device.lower()
    if device == "cpu":
        return [CPU]
    if device == "cuda":
        return [CUDA, CPU]
    if device == "tensorrt":
        return [TENSORRT, CUDA, CPU]
    if device == "auto":
        chosen = []
        if TENSORRT in available and CUDA in available and tensorrt_loadable():
            chosen.append(TENSORRT)
        if CUDA in available:
            chosen.append(CUDA)
        return chosen + [CPU]
    raise ValueError(f"unknown device {device!r}: use one of {', '.join(DEVICES)} or a list of providers")


@dataclass
class Session:
    session: object  # onnxruntime.InferenceSession
    requested: list[str]
    active: list[str]
    available: list[str] = field(default_factory=list)  # what this onnxruntime offers

    @property
    def fallback_note(self) -> str | None:
        """A one-line note when a requested accelerator was dropped (onnxruntime only logs this): which, why,
        and how to fix it."""
        dropped = [p for p in self.requested if p != CPU and p not in self.active]
        if not dropped:
            return None
        # The first one dropped is the one asked for (tensorrt requests CUDA as its fallback).
        return (f"{', '.join(dropped)} requested but not usable here: {why_unusable(dropped[0], self.available)}; "
                f"running on {', '.join(self.active)}")


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ccscore" / "tensorrt"


def provider_options(name: str) -> dict:
    """Per-provider options (GPU paths: written to the onnxruntime docs, not exercised on CI's CPU machines)."""
    if name == CUDA:
        return {
            # Tile shapes are fixed but batch sizes vary: an exhaustive search would re-run for each new one.
            "cudnn_conv_algo_search": "HEURISTIC",
            "arena_extend_strategy": "kSameAsRequested",
            "do_copy_in_default_stream": "1",
        }
    if name == TENSORRT:
        cache = _cache_dir()
        try:
            cache.mkdir(parents=True, exist_ok=True)
        except OSError:
            return {}
        return {
            "trt_engine_cache_enable": "True",
            "trt_engine_cache_path": str(cache),
            "trt_timing_cache_enable": "True",
            "trt_timing_cache_path": str(cache),
            # fp32 only: a reduced-precision build has not been validated against the near-zero thresholds.
            "trt_fp16_enable": "False",
        }
    return {}


def _env_int(name: str, default: int, minimum: int) -> int:
    value = os.environ.get(name, "").strip()
    try:
        return max(minimum, int(value)) if value else default
    except ValueError:
        return default


def default_intra_op_threads() -> int:
    """CCSCORE_THREADS when set (0: onnxruntime's choice, one per core), else half the cores, at least 1."""
    return _env_int("CCSCORE_THREADS", max(1, (os.cpu_count() or 1) // 2), 0)


def session_threads(intra_op_threads: int | None = None) -> int:
    """Threads one run of a CPU session made with `intra_op_threads` (None: `default_intra_op_threads`) may use:
    onnxruntime's 0 is one per core."""
    threads = default_intra_op_threads() if intra_op_threads is None else intra_op_threads
    return threads if threads > 0 else os.cpu_count() or 1


def cpu_batch() -> int:
    """Tiles per session run on CPU (CCSCORE_CPU_BATCH, default 1)."""
    return _env_int("CCSCORE_CPU_BATCH", 1, 1)


class ChunkedSession:
    """An onnxruntime session whose `run` feeds the batch through in chunks of `chunk` rows.

    Every other attribute is the wrapped session's. Used on CPU only: the detector's per-tile intermediates
    are large, so small runs stay in cache; GPUs want the whole batch.
    """

    def __init__(self, session, chunk: int):
        self._session = session
        self.chunk = chunk

    def __getattr__(self, name):
        return getattr(self._session, name)

    def run(self, output_names, input_feed, run_options=None):
        import numpy as np

        rows = {len(v) for v in input_feed.values() if hasattr(v, "shape") and getattr(v, "ndim", 0) > 0}
        n = rows.pop() if len(rows) == 1 else 0
        if n <= self.chunk:
            return self._session.run(output_names, input_feed, run_options)
        parts = [self._session.run(output_names, {k: v[i:i + self.chunk] for k, v in input_feed.items()}, run_options)
                 for i in range(0, n, self.chunk)]
        return [np.concatenate([p[j] for p in parts]) for j in range(len(parts[0]))]


def session_options(ort, intra_op_threads: int | None = None):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL  # the graph is one chain: parallel mode only adds overhead
    options.log_severity_level = 3  # provider fallbacks are reported by `fallback_note`, not stderr noise
    options.intra_op_num_threads = default_intra_op_threads() if intra_op_threads is None else intra_op_threads
    options.inter_op_num_threads = 1
    if os.environ.get("CCSCORE_SPIN", "0") != "1":
        # Idle pool threads otherwise spin for a while after each run, taking cores from decode workers.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


def create_session(model_path: str, device: Device = "auto", intra_op_threads: int | None = None) -> Session:
    ort = import_onnxruntime()
    available = ort.get_available_providers()
    requested = requested_providers(device, available)
    options = session_options(ort, intra_op_threads)
    usable = [p for p in requested if p in available] or [CPU]
    if TENSORRT in usable and not tensorrt_loadable():
        usable.remove(TENSORRT)
    providers = [(p, options_) if (options_ := provider_options(p)) else p for p in usable]
    try:
        session = ort.InferenceSession(model_path, options, providers=providers)
    except Exception as exc:  # onnxruntime raises several unrelated types for unreadable models
        raise ModelError(f"cannot load model {model_path}: {one_line(exc)[:300]}") from None
    active = list(session.get_providers())
    if active == [CPU] and cpu_batch() > 0:
        session = ChunkedSession(session, cpu_batch())
    return Session(session, requested, active, list(available))
