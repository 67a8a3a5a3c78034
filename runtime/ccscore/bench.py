"""`ccscore bench`: what scoring costs on this machine, per execution provider, next to the decoding floor.

For each provider it reports model throughput (tiles/s, model ms per image), the end-to-end rate of the real
command (`ccscore DIR --jsonl`, run as a subprocess so start-up, decode workers and output are all counted),
and its peak memory; beside them the floor, Pillow decoding the same files on all cores, timed in the same
run; and the cost of the reference architecture (CLIP ViT-L/14-336 on five crops), timed with random weights
when torch and transformers are importable, counted analytically otherwise.

Nothing here imports torch: the timing itself lives in `ccscore_export.reference` (the [train] side).
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

# Provider short names accepted by --providers -> what `--device` / `requested_providers` take.
PROVIDER_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}

# CLIP ViT-L/14 at 336 px: the reference architecture this project compares against.
REFERENCE = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                 image_size=336, patch_size=14, crops=5)


# ---------------------------------------------------------------- inputs


def synthetic_images(folder: Path, count: int = 6, seed: int = 0,
                     sizes: Optional[Sequence[tuple[int, int]]] = None) -> list[Path]:
    """Writes `count` illustration-like PNGs (flat fills, outlines, gradients, soft shading) of 1-4 MP."""
    from PIL import Image, ImageDraw, ImageFilter

    folder.mkdir(parents=True, exist_ok=True)
    sizes = list(sizes or [(1280, 800), (1600, 1200), (2048, 1536), (1920, 1080), (2000, 2000), (1200, 1600)])
    rng = np.random.default_rng(seed)
    paths = []
    for k in range(count):
        w, h = sizes[k % len(sizes)]
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        c0, c1 = rng.integers(40, 220, 3), rng.integers(40, 220, 3)
        t = (yy / h)[..., None]
        sky = (c0 * (1 - t) + c1 * t + 12 * np.sin(xx / (w / 7))[..., None]).clip(0, 255).astype(np.uint8)
        im = Image.fromarray(sky)
        d = ImageDraw.Draw(im)
        for _ in range(40):
            x0, y0 = int(rng.integers(0, w - 16)), int(rng.integers(0, h - 16))
            x1, y1 = x0 + int(rng.integers(12, max(13, w // 3))), y0 + int(rng.integers(12, max(13, h // 3)))
            fill = tuple(int(v) for v in rng.integers(0, 256, 3))
            shape = (d.ellipse, d.rectangle, d.rounded_rectangle)[int(rng.integers(0, 3))]
            shape([x0, y0, x1, y1], fill=fill, outline=(25, 20, 30), width=int(rng.integers(1, 6)))
        for _ in range(30):  # line art
            pts = [(int(rng.integers(0, w)), int(rng.integers(0, h))) for _ in range(4)]
            d.line(pts, fill=(20, 20, 25), width=int(rng.integers(1, 4)))
        im = im.filter(ImageFilter.GaussianBlur(0.7))  # anti-aliasing, as painted art has
        arr = np.asarray(im).astype(np.int16)
        arr += rng.integers(-2, 3, arr.shape, dtype=np.int16)  # a little paper grain
        path = folder / f"synthetic_{k:02d}_{w}x{h}.png"
        Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(path, compress_level=6)
        paths.append(path)
    return paths


def list_images(folder: Path) -> list[Path]:
    from .inputs import iter_inputs

    return [Path(item.path) for item in iter_inputs([str(folder)], None)]


# ---------------------------------------------------------------- decoding floor


def _decode(path: str) -> int:
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        return im.size[0] * im.size[1]


def _decode_as_ccscore(path: str) -> int:
    from .images import load_image

    width, height = load_image(path).size
    return width * height


def _noop(_: int) -> int:
    return 0


def _import_own_decoders(_: int) -> int:
    """Warms a pool worker for `_decode_as_ccscore`: its decoders imported before the clock starts."""
    from . import images

    for fast_decoder in ("pyspng", "zlib_ng"):
        try:
            importlib.import_module(fast_decoder)
        except ImportError:
            pass
    images._libspng()  # found once per process, at its first file with Average or Paeth rows
    return 0


def decode_floor(paths: Sequence[Path], workers: Optional[int] = None, repeats: int = 1, own: bool = False) -> dict:
    """Pillow decoding the files (open + load, nothing else) in `workers` processes, pool already started; with
    `own`, decoding them as ccscore does (`load_image`: 8-bit PNG inflated by zlib-ng, unfiltered by numpy or
    libspng, where installed)."""
    from .pipeline import mp_context

    workers = workers or os.cpu_count() or 1
    files = [str(p) for p in paths]
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp_context()) as pool:
        list(pool.map(_import_own_decoders if own else _noop, range(workers * 2)))  # every worker started first
        best = float("inf")
        pixels = 0
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter()
            pixels = sum(pool.map(_decode_as_ccscore if own else _decode, files, chunksize=1))
            best = min(best, time.perf_counter() - t0)
    n = len(files)
    return {"workers": workers, "seconds": best, "images_per_s": n / best, "megapixels": pixels / 1e6,
            "megapixels_per_s": pixels / 1e6 / best, "ms_per_image": 1000 * best / n}


# ---------------------------------------------------------------- model and end-to-end timing


def provider_available(name: str) -> tuple[bool, str]:
    from .providers import import_onnxruntime

    ort = import_onnxruntime()
    full = PROVIDER_NAMES.get(name, name)
    available = ort.get_available_providers()
    if full not in available:
        return False, f"not available: this onnxruntime {ort.__version__} has {', '.join(available)}"
    return True, ""


def time_model(model: str, provider: str, paths: Sequence[Path], batch_size: int, repeats: int = 3,
               threads: Optional[int] = None, max_tiles: Optional[int] = None) -> dict:
    """Tiles the images once, then times scoring their tiles (session runs, early stop included), best of
    `repeats`. Tiles counted are those scored, which early stopping makes fewer than those cut."""
    from .scorer import Scorer

    scorer = Scorer(model, device=provider, batch_size=batch_size, intra_op_threads=threads, max_tiles=max_tiles)
    if scorer.fallback_note:
        return {"available": False, "note": scorer.fallback_note}
    items = [(None, *scorer.tile(p)) for p in paths]
    list(scorer.score_tiled(items[: max(1, batch_size // 8)]))  # warm-up: allocations, kernels, engine builds
    best, scored = float("inf"), 0
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        results = list(scorer.score_tiled(items))
        best = min(best, time.perf_counter() - t0)
        scored = sum(len(r.tiles) for r in results)
    return {"available": True, "active": scorer.providers, "tiles": scored,
            "tiles_per_image": scored / len(paths), "early_stop": scorer.early_stop is not None,
            "tiles_per_s": scored / best, "model_ms_per_image": 1000 * best / len(paths),
            "model_ms_per_tile": 1000 * best / scored, "batch_size": batch_size}


def _cli_env() -> dict:
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([package_root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def compile_bytecode() -> bool:
    """Byte-compiles the ccscore package being timed, as `pip install` does; True when every module has bytecode.

    A source checkout run under PYTHONDONTWRITEBYTECODE (or from a read-only folder) compiles every module at each
    start, ~0.2 s that an installed package never pays: timing that would measure the checkout, not ccscore."""
    import compileall
    import io
    from contextlib import redirect_stdout

    try:
        with redirect_stdout(io.StringIO()):  # a read-only folder's complaints are the False below
            return bool(compileall.compile_dir(str(Path(__file__).resolve().parent), quiet=1))
    except OSError:
        return False


def _release_freed_memory() -> None:
    """Before a command is launched: Linux keeps a child's ru_maxrss across exec, starting from this process's peak
    resident size when it forked (vfork), so a benchmark that had decoded and tiled every image (`time_model`)
    would report its own peak as the command's. Freed memory goes back to the system and the peak is reset to
    what is resident now (`clear_refs` 5)."""
    import gc

    gc.collect()
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (musl)
        pass
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:  # older kernels, restricted /proc: the peak may then include this process's
        pass


def time_cli(folder: Path, model: Optional[str], device: str, extra: Sequence[str] = (),
             env: Optional[dict] = None) -> dict:
    """Runs `ccscore FOLDER --jsonl` with defaults as a subprocess; wall time, records, peak RSS, CPU time.
    The package is byte-compiled first (`compile_bytecode`), as an installed one is."""
    bytecode = compile_bytecode()
    _release_freed_memory()  # the command's peak RSS starts at this process's (see `_release_freed_memory`)
    cmd = [sys.executable, "-m", "ccscore", str(folder), "--jsonl", "--no-progress", "--device", device, *extra]
    if model:
        cmd += ["--model", str(model)]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env={**_cli_env(), **(env or {})})
        if hasattr(os, "wait4"):
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
            proc.returncode = os.waitstatus_to_exitcode(status)
            # ru_maxrss: kB on Linux, bytes on macOS; the largest of the command and its reaped children.
            scale = 1 if sys.platform == "darwin" else 1024
            peak_mb = usage.ru_maxrss * scale / 2**20
            cpu_s = usage.ru_utime + usage.ru_stime
        else:  # Windows: no per-child rusage
            proc.wait()
            wall = time.perf_counter() - t0
            peak_mb = cpu_s = None
        out.seek(0)
        err.seek(0)
        records = [json.loads(line) for line in out.read().decode("utf-8", "replace").splitlines() if line.strip()]
        stderr = err.read().decode("utf-8", "replace").strip()
    failed = sum("error" in r for r in records)
    result = {"command": "ccscore " + " ".join(shlex.quote(c) for c in cmd[3:]), "returncode": proc.returncode,
              "seconds": wall, "images": len(records), "failed": failed,
              "images_per_s": len(records) / wall if wall > 0 else 0.0, "peak_rss_mb": peak_mb,
              "cpu_seconds": cpu_s, "bytecode": bytecode}
    if proc.returncode not in (0, 1) or not records:
        result["error"] = (stderr.splitlines() or ["no output"])[-1][:300]
    return result


# ---------------------------------------------------------------- reference architecture


def reference_flops(crops: int = REFERENCE["crops"]) -> float:
    """Forward FLOPs (2 per multiply-add) of CLIP ViT-L/14-336's vision tower on `crops` crops."""
    d, m, layers = REFERENCE["hidden_size"], REFERENCE["intermediate_size"], REFERENCE["num_hidden_layers"]
    patches = (REFERENCE["image_size"] // REFERENCE["patch_size"]) ** 2
    tokens = patches + 1
    embed = patches * 3 * REFERENCE["patch_size"] ** 2 * d
    per_layer = 4 * tokens * d * d + 2 * tokens * tokens * d + 2 * tokens * d * m  # qkv+out, attention, MLP
    return 2.0 * crops * (embed + layers * per_layer)


def time_reference(images: int = 1, threads: Optional[int] = None) -> dict:
    """Times the reference vision tower with random weights on `images` x 5 crops, if torch is here."""
    result: dict = {"architecture": "CLIP ViT-L/14-336 vision tower, 5 crops per image",
                    "gflops_per_image": reference_flops() / 1e9}
    try:
        from ccscore_export.reference import time_vision_tower  # the torch side: needs the [train] extra
    except ImportError as exc:
        result["timed"] = False
        result["note"] = f"not timed ({exc.name or exc} missing): FLOP count only"
        return result
    config = {k: v for k, v in REFERENCE.items() if k != "crops"}
    result.update(time_vision_tower(config, REFERENCE["crops"], images, threads))
    return result


# ---------------------------------------------------------------- the whole run


def machine_info() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        info["cpu"] = platform.processor() or "unknown"
    try:
        info["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
        info["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except ImportError:
        info["onnxruntime"] = None
    import PIL

    info["pillow"] = PIL.__version__
    if hasattr(os, "getloadavg"):
        info["load_average_at_start"] = [round(v, 2) for v in os.getloadavg()]
    return info


@dataclass
class BenchOptions:
    folder: Optional[Path] = None
    providers: Sequence[str] = ("cpu",)
    model: Optional[str] = None
    synthetic: int = 6
    batch_size: int = 64
    repeats: int = 3
    reference: bool = True
    reference_images: int = 1
    end_to_end: bool = True
    command: str = ""


def run_bench(opts: BenchOptions, log=lambda msg: None) -> dict:
    from .model_info import default_model_path

    model = str(opts.model or default_model_path())
    tmp = None
    if opts.folder is None:
        tmp = tempfile.TemporaryDirectory(prefix="ccscore-bench-")
        folder = Path(tmp.name)
        log(f"writing {opts.synthetic} synthetic 1-4 MP illustrations to {folder}")
        synthetic_images(folder, opts.synthetic)
        source = f"{opts.synthetic} synthetic illustration-like PNGs (ccscore.bench.synthetic_images)"
    else:
        folder = Path(opts.folder)
        source = str(folder)
    try:
        paths = list_images(folder)
        if not paths:
            raise ValueError(f"no images in {folder}")
        report: dict = {"command": opts.command or " ".join(shlex.quote(a) for a in sys.argv), "machine": machine_info(), "model": model,
                        "images": {"source": source, "count": len(paths)}}
        log(f"decoding floor: {len(paths)} images on {os.cpu_count()} processes")
        floor = decode_floor(paths, repeats=opts.repeats)
        report["images"]["megapixels"] = round(floor["megapixels"], 2)
        report["decode_floor"] = floor
        report["decode_floor_1_process"] = decode_floor(paths, workers=1, repeats=1)
        # What the floor leaves out: ccscore decodes 8-bit PNG with zlib-ng, numpy and libspng, faster than Pillow
        # (same pixels).
        report["decode_own"] = decode_floor(paths, repeats=opts.repeats, own=True)
        rows = []
        for name in opts.providers:
            row: dict = {"provider": name}
            ok, note = provider_available(name)
            if not ok:
                row.update(available=False, note=note)
                rows.append(row)
                log(f"{name}: {note}")
                continue
            log(f"{name}: timing the model on the images' tiles")
            row.update(time_model(model, name, paths, opts.batch_size, opts.repeats))
            if row.get("available") and opts.end_to_end:
                log(f"{name}: timing `ccscore DIR --jsonl` end to end, then the floor again")
                runs = []
                floors = [floor["seconds"]]
                for _ in range(max(1, opts.repeats)):
                    runs.append(time_cli(folder, model, name))
                    floors.append(decode_floor(paths, repeats=1)["seconds"])  # interleaved: same load
                e2e = min(runs, key=lambda r: r["seconds"])
                floor_s = min(floors)
                row["end_to_end"] = e2e
                row["images_per_s"] = e2e["images_per_s"]
                row["end_to_end_vs_decode_floor"] = e2e["seconds"] / floor_s
                row["end_to_end_vs_own_decoding"] = e2e["seconds"] / report["decode_own"]["seconds"]
                row["decode_floor_seconds"] = floor_s
            rows.append(row)
        report["providers"] = rows
        if opts.reference:
            log(f"reference architecture: {opts.reference_images} image(s) x 5 crops (random weights)")
            ref = time_reference(opts.reference_images)
        else:
            ref = {"architecture": "CLIP ViT-L/14-336 vision tower, 5 crops per image",
                   "gflops_per_image": reference_flops() / 1e9, "timed": False, "note": "not timed (--no-reference)"}
        report["reference"] = ref
        if ref.get("timed"):
            for row in rows:
                if row.get("end_to_end") and row["end_to_end"]["images"]:
                    per_image = row["end_to_end"]["seconds"] / row["end_to_end"]["images"]
                    row["speedup_vs_reference"] = ref["seconds_per_image"] / per_image
        return report
    finally:
        if tmp is not None:
            tmp.cleanup()


def format_report(report: dict) -> str:
    m = report["machine"]
    floor = report["decode_floor"]
    lines = [
        f"machine: {m.get('cpu', '?')}, {m['cpu_count']} cores, {m.get('memory_gib', '?')} GiB; "
        f"onnxruntime {m.get('onnxruntime')}, Pillow {m['pillow']}; load at start {m.get('load_average_at_start')}",
        f"command: {report['command']}",
        f"images: {report['images']['count']} ({report['images'].get('megapixels', 0):.1f} MP) from {report['images']['source']}",
        f"decode floor (Pillow, {floor['workers']} processes): {floor['seconds']:.2f} s, {floor['images_per_s']:.1f} images/s, "
        f"{floor['megapixels_per_s']:.0f} MP/s; 1 process: {report['decode_floor_1_process']['ms_per_image']:.1f} ms/image",
    ]
    own = report.get("decode_own")
    if own:
        ratios = [f"{r['provider']} {r['end_to_end_vs_own_decoding']:.2f}" for r in report["providers"]
                  if "end_to_end_vs_own_decoding" in r]
        lines.append(f"ccscore's own decoding (8-bit PNG by zlib-ng, numpy and libspng where installed, else Pillow): "
                     f"{own['seconds']:.2f} s" + (f"; end to end / it: {', '.join(ratios)}" if ratios else ""))
    lines += [
        "",
        f"{'provider':<10} {'tiles/s':>8} {'tiles/img':>9} {'model ms/img':>12} {'e2e img/s':>10} {'e2e s':>7} "
        f"{'floor s':>8} {'e2e/floor':>9} {'peak MB':>8}  note",
    ]
    for row in report["providers"]:
        if not row.get("available"):
            lines.append(f"{row['provider']:<10} {'-':>8} {'-':>9} {'-':>12} {'-':>10} {'-':>7} {'-':>8} {'-':>9} {'-':>8}  "
                         f"{row.get('note', 'not available')}")
            continue
        e2e = row.get("end_to_end") or {}

        def num(v, fmt):
            return format(v, fmt) if isinstance(v, (int, float)) else "-"

        note = ", ".join(row.get("active", []))
        if e2e.get("error"):
            note += f"; end to end failed: {e2e['error']}"
        lines.append(f"{row['provider']:<10} {row['tiles_per_s']:>8.0f} {row['tiles_per_image']:>9.1f} "
                     f"{row['model_ms_per_image']:>12.1f} "
                     f"{num(e2e.get('images_per_s'), '10.2f')} {num(e2e.get('seconds'), '7.2f')} "
                     f"{num(row.get('decode_floor_seconds'), '8.2f')} {num(row.get('end_to_end_vs_decode_floor'), '9.2f')} "
                     f"{num(e2e.get('peak_rss_mb'), '8.0f')}  {note}")
    ref = report["reference"]
    line = f"reference ({ref['architecture']}): {ref['gflops_per_image']:.0f} GFLOP/image"
    if ref.get("timed"):
        line += f", {ref['seconds_per_image']:.1f} s/image on {ref['torch_threads']} torch threads ({ref['note']})"
        speedups = [f"{r['provider']} {r['speedup_vs_reference']:.0f}x" for r in report["providers"]
                    if "speedup_vs_reference" in r]
        if speedups:
            line += "; ccscore end to end is faster per image by " + ", ".join(speedups)
    else:
        line += f"; {ref.get('note', 'not timed')}"
    lines += ["", line]
    return "\n".join(lines)
