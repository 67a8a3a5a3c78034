"""Attacker's check of crash safety: SIGKILL a `--move-to` run and a `--copy-to` run at random points, resume
each time, then verify that nothing was lost, duplicated or truncated.

Builds IMAGES distinct small images (default 1000) in nested folders plus BIG large ones (default 3 x 20 MB,
flagged by the stub model) so that some kills land inside a copy, then for each action:
  - kills the run KILLS times (default 10): in turn right after the destination gains a file (between an
    action and its record), after a random number of records, and for `--copy-to` first at the moment a
    large file's copy appears in the destination, under its temporary name or its own (inside the copy);
  - resumes with `--resume` after each kill, and lets a last `--resume` finish;
  - checks: every file exists exactly once (in the source or the destination for a move; in the source, and
    in the destination when flagged, for a copy), byte for byte (sha256); no temporary or journal left over;
    exactly one record per file, and the flagged ones are exactly those in the destination.
The move run writes JSONL, the copy run CSV. The model is the stub from tests/stub_model.py (label from the
mean red level), so the check runs in about a minute per action on 2 cores.

    python benchmarks/kill_resume.py                  # 1000 images, 10 kills each
    python benchmarks/kill_resume.py --images 150 --kills 3 --big 2 --big-mb 8
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from stub_model import build_stub_model  # noqa: E402  (test tooling shared with the tests)

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "runtime"), os.environ.get("PYTHONPATH", "")]),
       "CCSCORE_THREADS": "1"}
CLI = [sys.executable, "-c", "import sys; from ccscore.cli import main; main(sys.argv[1:])"]
FOLDERS = ["", "a", "a/b", "c", "c/d/e"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()  # files of at most a few tens of MB


def make_dataset(root: Path, images: int, big: int, big_mb: int, seed: int) -> dict[str, str]:
    """Writes the images; returns {path relative to root: sha256}."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(images):
        folder = root / FOLDERS[i % len(FOLDERS)]
        folder.mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 256, 3)
        pixels = np.clip(base + rng.integers(-12, 13, (48, 64, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"img {i:05d}.png", compress_level=1)
    side = int((big_mb * 2**20 / 3) ** 0.5)
    for j in range(big):
        # Noise does not compress: a PNG of `big_mb` MB. Low red: the stub flags it, so it is copied or moved.
        pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        pixels[..., 0] //= 8
        folder = root / FOLDERS[(j * 2 + 1) % len(FOLDERS)]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(folder / f"big {j}.png", compress_level=0)
    return {str(p.relative_to(root)): sha256(p) for p in root.rglob("*") if p.is_file()}


def read_records(out: Path) -> list[dict]:
    if out.suffix == ".csv":
        with open(out, newline="", encoding="utf-8", errors="surrogateescape") as f:
            return list(csv.DictReader(f))
    records = [json.loads(l) for l in out.read_bytes().split(b"\n") if l]
    return [r for r in records if "ccscore_records" not in r]  # the header line


def count_records(out: Path) -> int:
    try:
        return max(0, out.read_bytes().count(b"\n") - 1)
    except FileNotFoundError:
        return 0


def count_files(folder: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(folder))


def kill_and_resume(args: list[str], out: Path, dest: Path, kills: int, total: int, partials: list[tuple[Path, Path]],
                    rng: random.Random, inside_copy: int, timeout: float = 300) -> list[str]:
    """Runs the command KILLS times, each killed with SIGKILL, then once to the end; returns what happened.

    Kill points, in turn: inside the copy of a large file (the first `inside_copy` kills: when its temporary
    file appears, plus 0-10 ms); right after the destination gains a file (plus 0-3 ms: between an action and
    the records around it); after a random number of records (plus 0-50 ms)."""
    log = []
    thresholds = sorted(rng.sample(range(1, max(total, kills + 1)), kills))
    for k in range(kills):
        resume = ["--resume"] if out.exists() else []
        in_dest = count_files(dest)
        proc = subprocess.Popen([*CLI, *args, *resume], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
        deadline = time.monotonic() + timeout
        when = "?"
        strategy = "copy" if k < inside_copy else ("dest" if k % 2 == 0 else "records")
        dest_target = in_dest + rng.randint(1, 30)
        while proc.poll() is None and time.monotonic() < deadline:
            if strategy == "copy":  # each such kill inside the copy of another large file
                seen = [p for p in partials[k % len(partials)] if p.exists()]
                if seen:
                    time.sleep(rng.uniform(0, 0.01))
                    try:
                        written = f"{seen[0].stat().st_size / 2**20:.1f} MB written"
                    except FileNotFoundError:
                        written = "just finished"
                    when = f"inside the copy of {seen[0].name} ({written})"
                    break
            elif strategy == "dest":
                if count_files(dest) >= dest_target:
                    time.sleep(rng.uniform(0, 0.003))
                    when = f"as the destination reached {dest_target} files"
                    break
            elif count_records(out) >= thresholds[k]:
                time.sleep(rng.uniform(0, 0.05))
                when = f"after ~{thresholds[k]} records"
                break
            time.sleep(0.0005)
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace").strip().splitlines()
            log.append(f"run {k + 1} ended before its kill point (rc {proc.returncode}): {err[-1] if err else ''}")
            continue
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
        log.append(f"kill {k + 1}: {when}")
    final = subprocess.run([*CLI, *args, "--resume"], capture_output=True, env=ENV, timeout=timeout)
    lines = final.stderr.decode(errors="replace").strip().splitlines()
    log.append(f"final --resume: rc {final.returncode}; {lines[-1] if lines else ''}")
    if final.returncode != 0:
        log.extend(lines[-5:])
    return log


def check(kind: str, root: Path, dest: Path, out: Path, originals: dict[str, str]) -> list[str]:
    """Every problem found (empty: all good)."""
    problems = []
    where: dict[str, list[str]] = {}
    for side, folder in (("source", root), ("dest", dest)):
        for p in folder.rglob("*") if folder.exists() else []:
            if p.is_file() or p.is_symlink():
                where.setdefault(sha256(p) if p.is_file() else "link", []).append(f"{side}:{p.relative_to(folder)}")
    by_hash = {h: rel for rel, h in originals.items()}
    strays = [loc for h, locs in where.items() if h not in by_hash for loc in locs]
    if strays:
        problems.append(f"{len(strays)} files that are no original (truncated or temporary): {strays[:5]}")
    records = read_records(out)
    per_path = Counter(r["path"] for r in records)
    per_file = Counter(os.path.relpath(p, root) for p in per_path.elements())
    for rel, n in per_file.items():
        if rel not in originals:
            problems.append(f"a record for {rel}, which is no original")
    flagged = {os.path.relpath(r["path"], root) for r in records if r.get("label") not in (None, "", "clean")}
    for rel, h in originals.items():
        locs = where.get(h, [])
        if per_file[rel] != 1:
            problems.append(f"{rel}: {per_file[rel]} records")
        in_src = [l for l in locs if l.startswith("source:")]
        in_dst = [l for l in locs if l.startswith("dest:")]
        want_dst = 1 if rel in flagged else 0
        want_src = 1 if kind == "copy" or not want_dst else 0
        if len(in_src) != want_src or len(in_dst) != want_dst:
            problems.append(f"{rel}: found at {locs or 'nowhere'}; expected {want_src} in source, {want_dst} in dest")
        elif want_dst and in_dst[0] != f"dest:{rel}":
            problems.append(f"{rel}: in dest as {in_dst[0]}")
    leftovers = [p.name for p in out.parent.iterdir() if "ccscore-journal" in p.name or "ccscore-new" in p.name]
    if leftovers:
        problems.append(f"left over beside the output: {leftovers}")
    return problems


def trial(work: Path, model: Path, kind: str, images: int, kills: int, big: int, big_mb: int, seed: int,
          workers: int) -> dict:
    root, dest = work / kind / "data", work / kind / "flagged"
    out = work / kind / ("records.jsonl" if kind == "move" else "records.csv")
    originals = make_dataset(root, images, big, big_mb, seed)
    # A copy being written: under its temporary name, or (a copy made in place) under its own.
    partials = [(dest / Path(rel).parent / f".{Path(rel).name}.ccscore-partial", dest / rel)
                for rel in sorted(originals) if Path(rel).name.startswith("big ")]
    args = [str(root), "--model", str(model), "--output", str(out), f"--{kind}-to", str(dest),
            "--workers", str(workers), "--batch-size", "8"]
    start = time.monotonic()
    log = kill_and_resume(args, out, dest, kills, len(originals), partials, random.Random(seed),
                          inside_copy=min(big, kills // 3) if kind == "copy" else 0)
    problems = check(kind, root, dest, out, originals)
    records = read_records(out)
    return {"kind": kind, "files": len(originals), "records": len(records),
            "flagged": sum(r.get("label") not in (None, "", "clean") for r in records),
            "in_dest": sum(1 for p in dest.rglob("*") if p.is_file()) if dest.exists() else 0,
            "seconds": round(time.monotonic() - start, 1), "log": log, "problems": problems}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--big", type=int, default=3, help="large files (flagged), so that kills land inside copies")
    ap.add_argument("--big-mb", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=None, help="folder to work in (default: a temporary one)")
    a = ap.parse_args(argv)
    failed = False
    with tempfile.TemporaryDirectory(prefix="ccscore-kill-") as tmp:
        work = a.work or Path(tmp)
        model = build_stub_model(work / "stub.onnx")
        for kind in ("move", "copy"):
            r = trial(work, model, kind, a.images, a.kills, a.big, a.big_mb, a.seed, a.workers)
            print(f"--{kind}-to: {r['files']} files ({a.images} images + {a.big} x {a.big_mb} MB), "
                  f"{a.kills} kills, {r['seconds']} s")
            for line in r["log"]:
                print(f"  {line}")
            print(f"  records: {r['records']} for {r['files']} files; flagged {r['flagged']}, "
                  f"in destination {r['in_dest']}")
            if r["problems"]:
                failed = True
                print(f"  FAILED: {len(r['problems'])} problems")
                for p in r["problems"][:20]:
                    print(f"    {p}")
            else:
                print("  OK: every file exactly once (sha256), never truncated, exactly one record per file, "
                      "no temporary or journal left")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
