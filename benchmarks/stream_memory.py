"""Peak memory of a long streaming run: does RSS stay flat whatever the number of inputs?

Generates DISTINCT small images (default 2000), writes a list naming each of them REPEAT times
(default 50, so 100,000 entries), runs `ccscore --from-list LIST --output OUT.jsonl` and samples the RSS
of the whole process tree (main process, forkserver, decoding workers) every 50 ms.

Why a list and not a folder: folder walking yields each real file once, so 100,000 records from a
folder would need 100,000 files on disk. List entries are a job spec instead: every entry gets its own
record, duplicates included (documented in `ccscore.inputs`), which is what lets 2000 files make a
100,000-record run. Decoding, tiling, batching and writing do the same work for a repeated entry as for
a new file; only the page cache is warmer.

The model: --model PATH, else the bundled model if built, else a stub with the detector's contract
built with `onnx` (a small convolution): this measures the pipeline, not the classifier, and keeps a
100,000-image run within minutes on 2 cores.

    python benchmarks/stream_memory.py                        # 100,000 entries
    python benchmarks/stream_memory.py --distinct 500 --repeat 10 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from stub_model import build_stub_model  # noqa: E402  (test tooling shared with the benchmarks)


def make_images(folder: Path, n: int, size: tuple[int, int]) -> list[Path]:
    from PIL import Image

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    w, h = size
    for i in range(n):
        base = rng.integers(0, 256, 3)
        noise = rng.integers(-20, 21, (h, w, 3))
        p = folder / f"{i // 500:03d}" / (f"img-{i:05d}.png" if i % 2 else f"img-{i:05d}.jpg")
        p.parent.mkdir(exist_ok=True)
        Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(p)
        paths.append(p)
    return paths


def tree_rss(proc) -> tuple[int, int]:
    """(sum over the process tree, largest single process) in bytes."""
    import psutil

    total = largest = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0, 0
    for p in procs:
        try:
            rss = p.memory_info().rss
        except psutil.Error:
            continue
        total += rss
        largest = max(largest, rss)
    return total, largest


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--distinct", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--size", type=int, nargs=2, default=(160, 144), metavar=("W", "H"))
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--workdir", type=Path, default=None, help="keep files here (default: a temp folder)")
    args = ap.parse_args()

    import psutil

    work = args.workdir or Path(tempfile.mkdtemp(prefix="ccscore-stream-"))
    work.mkdir(parents=True, exist_ok=True)
    model = args.model
    if model is None:
        bundled = REPO / "models" / "ccscore-detector.onnx"
        model = bundled if bundled.is_file() else build_stub_model(work / "stub.onnx")
    t = time.perf_counter()
    images = make_images(work / "images", args.distinct, tuple(args.size))
    print(f"generated {len(images)} images in {time.perf_counter() - t:.1f}s under {work}", file=sys.stderr)
    listing = work / "list.txt"
    with open(listing, "w") as f:
        for _ in range(args.repeat):
            for p in images:
                f.write(f"{p}\n")
    entries = args.distinct * args.repeat
    out = work / "records.jsonl"
    if out.exists():
        out.unlink()

    cmd = [sys.executable, "-c", "import sys; from ccscore.cli import main; main(sys.argv[1:])",
           "--from-list", str(listing), "--output", str(out), "--model", str(model), "--batch-size",
           str(args.batch_size), "--no-progress"]
    if args.workers is not None:
        cmd += ["--workers", str(args.workers)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "runtime"), os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE)
    ps = psutil.Process(proc.pid)
    peak_total = peak_single = 0
    checkpoints = {}
    while proc.poll() is None:
        total, single = tree_rss(ps)
        peak_total, peak_single = max(peak_total, total), max(peak_single, single)
        done = out.stat().st_size if out.exists() else 0
        bucket = int(10 * min(done / max(1, entries * 190), 0.99))  # rough: ~190 bytes a record
        checkpoints.setdefault(bucket, total)
        time.sleep(0.05)
    _, stderr = proc.communicate()
    elapsed = time.perf_counter() - start
    records = sum(1 for _ in open(out, "rb")) if out.exists() else 0
    errors = sum(1 for line in open(out, "rb") if b'"error"' in line) if out.exists() else 0
    summary = stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
    result = {
        "entries": entries, "records": records, "errors": errors, "exit": proc.returncode,
        "seconds": round(elapsed, 1), "images_per_s": round(records / elapsed, 1),
        "peak_rss_tree_mb": round(peak_total / 2**20, 1), "peak_rss_single_process_mb": round(peak_single / 2**20, 1),
        "rss_tree_mb_by_decile": {k * 10: round(v / 2**20, 1) for k, v in sorted(checkpoints.items())},
        "model": str(model), "cli_summary": summary[0],
    }
    print(json.dumps(result, indent=1))
    return 0 if records == entries and proc.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
