"""The same images through `ccscore` (one process, decode pool) and through `ccscore ray` (Ray Data, a local
cluster started by the command), on WebDataset tar shards and a Parquet file; prints wall times, images/s per
node and the per-key equality check (label equal, scores within 1e-6, every key exactly once in each).

    python benchmarks/ray_throughput.py                       # 1,000 images: 4 tar shards + 1 Parquet file
    python benchmarks/ray_throughput.py --images 200 --size 512x384 --kill-check

The dataset is built once under --data (default /tmp/ccscore-ray-bench) and reused: procedural illustrations
(ccscore_export.data.procedural) cropped and flipped into distinct images, saved in turn as JPEG (quality
50-95), PNG and WebP; each tar shard also holds a caption (.txt) and a metadata (.json) member per image, as
img2dataset writes. `--kill-check` also SIGKILLs a `ccscore ray` run once its first output shard is complete,
reruns it, and checks that every key ends exactly once.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "import sys; from ccscore.cli import main; main(sys.argv[1:])"]
CODECS = (("jpg", "JPEG"), ("png", "PNG"), ("webp", "WEBP"))
TOLERANCE = 1e-6


def encoded_images(n: int, size: tuple[int, int], seed: int = 0, distinct: int = 50):
    """n (name, bytes) pairs: `distinct` drawings, each cropped, flipped and encoded several ways."""
    from ccscore_export.data.procedural import draw_illustration

    width, height = size
    rng = np.random.default_rng(seed)
    bases = [draw_illustration(np.random.default_rng(seed * 1000 + k), height + 64, width + 64)
             for k in range(min(n, distinct))]
    for i in range(n):
        base = bases[i % len(bases)]
        dy, dx = (int(v) for v in rng.integers(0, 64, 2))
        pixels = base[dy:dy + height, dx:dx + width]
        if (i // len(bases)) % 2:
            pixels = pixels[:, ::-1]
        ext, fmt = CODECS[i % len(CODECS)]
        buf = io.BytesIO()
        options = {"quality": int(rng.integers(50, 96))} if fmt in ("JPEG", "WEBP") else {}
        Image.fromarray(np.ascontiguousarray(pixels)).save(buf, fmt, **options)
        yield f"{i:06d}.{ext}", buf.getvalue()


def write_tar(path: Path, images) -> None:
    """A WebDataset shard: for each image KEY.EXT, also KEY.txt and KEY.json."""
    def add(tar, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(data))

    with tarfile.open(path, "w") as tar:
        for name, data in images:
            key = name.rsplit(".", 1)[0]
            add(tar, name, data)
            add(tar, f"{key}.txt", f"a drawing, number {key}".encode())
            add(tar, f"{key}.json", json.dumps({"key": key}).encode())


def write_parquet(path: Path, images) -> None:
    """img2dataset's Parquet layout: a `key` column and the encoded image in `jpg` (whatever its codec)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"key": name.rsplit(".", 1)[0], "jpg": data, "caption": "a drawing"} for name, data in images]
    pq.write_table(pa.Table.from_pylist(rows), path)


def build_dataset(folder: Path, images: int, tar_shards: int = 4, parquet_files: int = 1,
                  size: tuple[int, int] = (1024, 768), seed: int = 0) -> list[Path]:
    """The shards (tar first, then Parquet) holding `images` images split evenly; built once per folder."""
    marker = folder / "dataset.json"
    spec = {"images": images, "tar": tar_shards, "parquet": parquet_files, "size": list(size), "seed": seed}
    names = [f"shard-{k:05d}.tar" for k in range(tar_shards)] + [f"part-{k:05d}.parquet" for k in range(parquet_files)]
    if marker.exists() and json.loads(marker.read_text()) == spec:
        return [folder / n for n in names]
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    pairs = list(encoded_images(images, size, seed))
    per = -(-len(pairs) // len(names))
    for k, name in enumerate(names):
        part = pairs[k * per:(k + 1) * per]
        (write_tar if name.endswith(".tar") else write_parquet)(folder / name, part)
    marker.write_text(json.dumps(spec))
    return [folder / n for n in names]


def cli_records(path: Path) -> list[dict]:
    header, *records = [json.loads(line) for line in path.read_bytes().splitlines() if line]
    assert header.get("ccscore_records") == 1
    return records


def ray_records(folder: Path) -> list[dict]:
    """The rows of every output shard of `ccscore ray`, as records (label, scores, error)."""
    import pyarrow.parquet as pq

    records = []
    for f in sorted(folder.glob("*.parquet")):
        for row in pq.read_table(f).to_pylist():
            scores = {k[len("score_"):]: v for k, v in row.items() if k.startswith("score_") and v is not None}
            records.append({"path": row["path"], **({"error": row["error"]} if row["error"] else
                                                    {"label": row["label"], "scores": scores})})
    return records


def compare(cli: list[dict], ray: list[dict]) -> list[str]:
    """Differences between two record sets, per key (empty: equal)."""
    problems = []
    for name, records in (("ccscore", cli), ("ccscore ray", ray)):
        extra = [k for k, n in Counter(r["path"] for r in records).items() if n > 1]
        if extra:
            problems.append(f"{name}: {len(extra)} keys more than once, e.g. {extra[0]}")
    a, b = {r["path"]: r for r in cli}, {r["path"]: r for r in ray}
    if set(a) != set(b):
        problems.append(f"keys differ: {len(set(a) - set(b))} only in ccscore, {len(set(b) - set(a))} only in ray")
    for key in sorted(set(a) & set(b)):
        x, y = a[key], b[key]
        if ("error" in x) != ("error" in y) or x.get("label") != y.get("label"):
            problems.append(f"{key}: {x.get('label', x.get('error'))} vs {y.get('label', y.get('error'))}")
        elif "scores" in x and (set(x["scores"]) != set(y["scores"]) or any(
                abs(x["scores"][k] - y["scores"][k]) > TOLERANCE for k in x["scores"])):
            problems.append(f"{key}: scores {x['scores']} vs {y['scores']}")
    return problems


def timed(cmd: list[str], env: dict) -> float:
    start = time.monotonic()
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.monotonic() - start
    if done.returncode not in (0, 1):
        sys.exit(f"{' '.join(cmd[3:])} failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
    return elapsed


def kill_and_rerun(shards: list[Path], out: Path, env: dict, extra: list[str]) -> list[dict]:
    """SIGKILLs `ccscore ray` once its first output shard is complete, reruns it; returns the records."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [*CLI, "ray", *map(str, shards), "--output", str(out), *extra]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline and not list(out.glob("*.parquet")):
        time.sleep(0.05)
    killed = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list(out.glob("*.parquet")))
    print(f"killed: {killed}, with {done_before} of {len(shards)} output shards complete")
    subprocess.run(cmd, env=env, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return ray_records(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--size", default="1024x768", help="WIDTHxHEIGHT of every image")
    ap.add_argument("--data", type=Path, default=Path("/tmp/ccscore-ray-bench"))
    ap.add_argument("--repeats", type=int, default=1, help="timed runs of each (the best is reported)")
    ap.add_argument("--kill-check", action="store_true")
    ap.add_argument("--ray-args", default="", help="extra arguments for `ccscore ray` (e.g. '--address auto')")
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "runtime"), str(ROOT / "export"), os.environ.get("PYTHONPATH", "")])}
    sys.path[:0] = [str(ROOT / "runtime"), str(ROOT / "export")]
    shards = build_dataset(args.data / "shards", args.images, size=(width, height))
    print(f"{args.images} images of {width}x{height} in {len(shards)} shards: {', '.join(s.name for s in shards)}; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    cli_out, ray_out = args.data / "cli.jsonl", args.data / "ray-out"
    extra = args.ray_args.split()
    cli_times, ray_times = [], []
    for _ in range(args.repeats):
        cli_out.unlink(missing_ok=True)
        cli_times.append(timed([*CLI, *map(str, shards), "--output", str(cli_out), "--no-progress"], env))
        shutil.rmtree(ray_out, ignore_errors=True)
        ray_times.append(timed([*CLI, "ray", *map(str, shards), "--output", str(ray_out), *extra], env))
    cli_s, ray_s = min(cli_times), min(ray_times)
    print(f"ccscore (CLI)  wall {cli_s:6.1f} s  {args.images / cli_s:6.1f} images/s   runs: "
          f"{', '.join(f'{t:.1f}' for t in cli_times)}")
    print(f"ccscore ray    wall {ray_s:6.1f} s  {args.images / ray_s:6.1f} images/s per node (1 node, local "
          f"cluster start-up included)   runs: {', '.join(f'{t:.1f}' for t in ray_times)}")
    pairs = sorted(r / c for c, r in zip(cli_times, ray_times))
    print(f"ratio ray / CLI: {ray_s / cli_s:.2f} best to best, {pairs[len(pairs) // 2]:.2f} median of the runs "
          f"side by side ({', '.join(f'{p:.2f}' for p in pairs)}) (bar: <= 1.5); load average "
          f"{os.getloadavg()[0]:.1f} at end")
    problems = compare(cli_records(cli_out), ray_records(ray_out))
    print("per-key equality (label, scores within 1e-6, every key once): "
          + ("OK, " + f"{args.images} keys" if not problems else f"{len(problems)} problems: {problems[:5]}"))
    if args.kill_check:
        after = kill_and_rerun(shards, args.data / "ray-killed", env, extra)
        counts = Counter(r["path"] for r in after)
        once = len(counts) == args.images and all(n == 1 for n in counts.values())
        problems += compare(cli_records(cli_out), after)
        print(f"rerun after SIGKILL: {len(counts)} keys, every key exactly once: {once}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
