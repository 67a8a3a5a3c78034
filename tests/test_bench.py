"""`ccscore bench`: runs, reports every asked provider (unavailable ones as such), emits the documented fields.

No timing assertions here: speed lives in benchmarks/speed.py, which prints numbers.
"""

from __future__ import annotations

import json

import pytest

from conftest import draw_art, run_cli

onnxruntime = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def two_images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench_images")
    draw_art(3, (300, 260)).save(folder / "a.png")
    draw_art(4, (260, 200)).save(folder / "b.png")
    return folder


def _unavailable_provider() -> str | None:
    names = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
    available = onnxruntime.get_available_providers()
    return next((short for short, full in names.items() if full not in available), None)


def test_bench_json_reports_fields_and_unavailable_providers(tiny_model, two_images):
    missing = _unavailable_provider()
    providers = "cpu" + (f",{missing}" if missing else "")
    # torch blocked, as on a plain runtime install: the reference is then a FLOP count, not a timing.
    proc = run_cli("bench", str(two_images), "--model", str(tiny_model), "--providers", providers,
                   "--json", "--repeats", "1", timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["images"]["count"] == 2
    assert report["command"].startswith("ccscore bench ")
    assert {"cpu", "cpu_count"} <= set(report["machine"])
    floor = report["decode_floor"]
    assert floor["seconds"] > 0 and floor["images_per_s"] > 0 and floor["workers"] >= 1
    rows = {r["provider"]: r for r in report["providers"]}
    assert list(rows) == providers.split(",")
    cpu = rows["cpu"]
    assert cpu["available"] is True and "CPUExecutionProvider" in cpu["active"]
    for key in ("tiles_per_s", "model_ms_per_image", "images_per_s", "end_to_end_vs_decode_floor",
                "end_to_end_vs_own_decoding"):
        assert cpu[key] > 0, key
    own = report["decode_own"]  # decoding as ccscore does, beside Pillow's floor
    assert own["seconds"] > 0 and own["megapixels"] == floor["megapixels"]
    e2e = cpu["end_to_end"]
    assert e2e["returncode"] == 0 and e2e["images"] == 2 and e2e["failed"] == 0
    assert e2e["command"].startswith("ccscore ") and "--jsonl" in e2e["command"]
    if e2e["peak_rss_mb"] is not None:
        assert e2e["peak_rss_mb"] > 10
    if missing:
        assert rows[missing]["available"] is False and "not available" in rows[missing]["note"]
    ref = report["reference"]
    assert ref["timed"] is False and "missing" in ref["note"]
    assert 1800 < ref["gflops_per_image"] < 2000  # ~1.9 TFLOP for five 336 px crops through ViT-L/14


def test_bench_table_without_dir_uses_synthetic_images(tiny_model):
    missing = _unavailable_provider() or "cpu"
    proc = run_cli("bench", "--model", str(tiny_model), "--providers", f"cpu,{missing}", "--synthetic", "1",
                   "--repeats", "1", "--no-reference", "--no-end-to-end", timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "decode floor" in out and "synthetic" in out and "tiles/s" in out and "ccscore's own decoding" in out
    assert "GFLOP/image" in out
    if missing != "cpu":
        assert "not available" in out


def test_bench_rejects_unknown_provider():
    proc = run_cli("bench", "--providers", "cpu,tpu", "--no-reference")
    assert proc.returncode == 2
    assert "unknown provider" in proc.stderr


def test_synthetic_images_are_illustration_sized(tmp_path):
    from PIL import Image

    from ccscore.bench import synthetic_images

    paths = synthetic_images(tmp_path, 2, sizes=[(1200, 900), (2000, 2000)])
    sizes = [Image.open(p).size for p in paths]
    assert sizes == [(1200, 900), (2000, 2000)]
    assert all(1.0 <= w * h / 1e6 <= 4.0 for w, h in sizes)


def test_reference_flops_match_the_vit_l_336_arithmetic():
    from ccscore.bench import reference_flops

    # 24 layers x (12 N D^2 + 2 N^2 D) multiply-adds at N = 577 tokens, D = 1024, plus the patch embedding.
    n, d = 577, 1024
    macs = 24 * (12 * n * d * d + 2 * n * n * d) + 576 * 3 * 14 * 14 * d
    assert reference_flops(crops=1) == pytest.approx(2 * macs)
    assert reference_flops() == pytest.approx(10 * macs)


def test_cpu_sessions_run_tiles_in_chunks_with_identical_outputs(tiny_model, monkeypatch):
    import numpy as np

    from ccscore.providers import ChunkedSession, create_session

    monkeypatch.setenv("CCSCORE_CPU_BATCH", "3")
    chunked = create_session(str(tiny_model), "cpu")
    assert isinstance(chunked.session, ChunkedSession) and chunked.session.chunk == 3
    whole = onnxruntime.InferenceSession(str(tiny_model), providers=["CPUExecutionProvider"])
    pixels = np.random.default_rng(0).integers(0, 256, (7, 128, 128, 3), dtype=np.uint8)
    expected = whole.run(None, {"pixels": pixels})
    got = chunked.session.run(None, {"pixels": pixels})
    for e, g in zip(expected, got):
        assert e.shape == g.shape
        np.testing.assert_allclose(e, g, atol=1e-5)
    assert chunked.session.get_inputs()[0].name == "pixels"  # everything else is the wrapped session's


def test_provider_order_tensorrt_then_cuda_then_cpu():
    from ccscore.providers import CPU, CUDA, TENSORRT, requested_providers

    assert requested_providers("auto", [CPU]) == [CPU]
    assert requested_providers("auto", [CUDA, CPU]) == [CUDA, CPU]
    assert requested_providers("tensorrt", [CPU]) == [TENSORRT, CUDA, CPU]
    auto = requested_providers("auto", [TENSORRT, CUDA, CPU])
    assert auto[-2:] == [CUDA, CPU] and auto[0] in (TENSORRT, CUDA)  # TensorRT only where its libraries load


def test_a_device_is_surely_cpu_only_where_no_accelerator_can_be_chosen(monkeypatch):
    """Told before onnxruntime is imported (workers are forked first): "auto" is CPU only without onnxruntime-gpu."""
    import ccscore.providers as providers
    from ccscore.providers import CPU, CUDA, surely_cpu

    assert surely_cpu("cpu") and surely_cpu("CPU") and surely_cpu([CPU])
    assert not surely_cpu("cuda") and not surely_cpu("tensorrt") and not surely_cpu([CUDA, CPU])
    monkeypatch.setattr(providers, "cuda_provider_installed", lambda: False)
    assert surely_cpu("auto")
    monkeypatch.setattr(providers, "cuda_provider_installed", lambda: True)
    assert not surely_cpu("auto")


def test_the_cuda_provider_is_found_by_its_library(tmp_path, monkeypatch):
    """onnxruntime-gpu ships libonnxruntime_providers_cuda.so (onnxruntime_providers_cuda.dll) beside its bindings;
    the CPU build does not. Told from the files, without importing onnxruntime."""
    import sys

    from ccscore.providers import cuda_provider_installed

    assert cuda_provider_installed() == ("CUDAExecutionProvider" in __import__("onnxruntime").get_available_providers())
    fake = tmp_path / "onnxruntime"
    (fake / "capi").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "onnxruntime", raising=False)
    assert not cuda_provider_installed()
    (fake / "capi" / "libonnxruntime_providers_cuda.so").write_bytes(b"")
    assert cuda_provider_installed()


def test_timed_package_is_byte_compiled_as_an_install_leaves_it():
    """The end-to-end timings must not charge a source checkout's per-start compilation (PYTHONDONTWRITEBYTECODE)
    to ccscore: every module of the timed package has bytecode for this interpreter once `compile_bytecode` ran."""
    import importlib.util
    from pathlib import Path

    from ccscore import bench

    assert bench.compile_bytecode()
    package = Path(bench.__file__).resolve().parent
    modules = sorted(package.rglob("*.py"))
    assert modules and all(Path(importlib.util.cache_from_source(str(m))).is_file() for m in modules)
