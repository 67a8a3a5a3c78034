"""Folder runs end to end: a messy dataset, a run killed with SIGKILL and resumed, actions, bad input.

The model here is a stub built with `onnx.helper` (same input/output/metadata contract as the real
detector, a small convolution so a session run costs a few milliseconds): these tests exercise the
pipeline, not the classifier, and must stay fast. Its label depends on the tiles' mean red level, so
a dataset of random colours gets a mix of clean and flagged images.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, features

from stub_model import build_stub_model

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "runtime"), os.environ.get("PYTHONPATH", "")]),
       "CCSCORE_THREADS": "1"}
CLI = [sys.executable, "-c", "import sys; from ccscore.cli import main; main(sys.argv[1:])"]
N_GOOD = 300
BAD = ("empty.png", "notes-as.jpg", "truncated.png", "truncated.jpg", "random-bytes.webp", "bomb-30000x30000.png")


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def stub_model(tmp_path_factory) -> Path:
    return build_stub_model(tmp_path_factory.mktemp("stub") / "stub.onnx")


def _picture(rng, w: int, h: int) -> np.ndarray:
    """Smooth random-colour gradient plus texture: decodes like a photo, varies in mean red level."""
    base = rng.integers(20, 236, 3).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    grad = np.stack([xx / max(w, 1) * 30, yy / max(h, 1) * 30, (xx + yy) / max(w + h, 1) * 30], -1)
    noise = rng.normal(0, 12, (h, w, 3))
    return np.clip(base + grad + noise, 0, 255).astype(np.uint8)


def _bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1024))
            + chunk(b"IEND", b""))


def _save_kind(kind: str, rgb: np.ndarray, path: Path) -> Path:
    im = Image.fromarray(rgb)
    if kind == "png":
        im.save(path.with_suffix(".png"))
    elif kind == "jpg":
        im.save(path.with_suffix(".jpg"), quality=85)
    elif kind == "JPEG-upper":
        im.save(path.with_suffix(".JPEG"), "JPEG", quality=70)
    elif kind == "webp":
        im.save(path.with_suffix(".webp"), quality=80)
    elif kind == "bmp":
        im.save(path.with_suffix(".bmp"))
    elif kind == "gif":
        im.convert("P", palette=Image.WEB, dither=Image.Dither.NONE).save(path.with_suffix(".gif"))
    elif kind == "gif-animated":
        frames = [Image.fromarray(a).convert("P", palette=Image.WEB, dither=Image.Dither.NONE) for a in (rgb, 255 - rgb)]
        frames[0].save(path.with_suffix(".gif"), save_all=True, append_images=frames[1:], duration=100, loop=0)
    elif kind == "tif-16bit":
        gray16 = (rgb.mean(axis=2) * 257).astype(np.uint16)
        Image.fromarray(gray16).save(path.with_suffix(".tif"))
    elif kind == "tiff-lzw":
        im.save(path.with_suffix(".tiff"), compression="tiff_lzw")
    elif kind == "jpg-cmyk":
        im.convert("CMYK").save(path.with_suffix(".jpg"), quality=90)
    elif kind == "tif-cmyk":
        im.convert("CMYK").save(path.with_suffix(".tif"))
    elif kind == "png-palette-transparent":
        p = im.convert("P", palette=Image.WEB, dither=Image.Dither.NONE)
        p.info["transparency"] = 0
        p.save(path.with_suffix(".png"), transparency=0)
    elif kind == "png-LA":
        im.convert("LA").save(path.with_suffix(".png"))
    elif kind == "png-RGBA":
        rgba = im.convert("RGBA")
        rgba.putalpha(Image.fromarray(rgb[..., 0]))
        rgba.save(path.with_suffix(".png"))
    elif kind == "png-L":
        im.convert("L").save(path.with_suffix(".png"))
    elif kind == "png-1bit":
        im.convert("1").save(path.with_suffix(".png"))
    elif kind == "jpg-exif-rotated":
        exif = Image.Exif()
        exif[0x0112] = 6  # rotate 90 CW on display
        im.save(path.with_suffix(".jpg"), exif=exif, quality=85)
    elif kind == "avif":
        im.save(path.with_suffix(".avif"), quality=70, speed=10)
    else:
        raise ValueError(kind)
    return next(p for p in path.parent.iterdir() if p.stem == path.name)


KINDS = ["png", "jpg", "JPEG-upper", "webp", "bmp", "gif", "gif-animated", "tif-16bit", "tiff-lzw", "jpg-cmyk",
         "tif-cmyk", "png-palette-transparent", "png-LA", "png-RGBA", "png-L", "png-1bit", "jpg-exif-rotated",
         "small"]
if features.check("avif"):
    KINDS.append("avif")
FOLDERS = ["", "a", "a/b", "a/b/c", "ünïcødé", "ünïcødé/日本語 フォルダ", "z/deep/er/still"]


@pytest.fixture(scope="module")
def messy(tmp_path_factory) -> dict:
    """300 good images of every mode and container in nested folders, 6 hostile files, loops, decoys."""
    root = tmp_path_factory.mktemp("messy") / "data set"
    rng = np.random.default_rng(7)
    good, exif = [], []
    for i in range(N_GOOD):
        kind = KINDS[i % len(KINDS)]
        folder = root / FOLDERS[i % len(FOLDERS)]
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{'bild-ä ' if i % 4 == 0 else 'img_'}{i:03d}"
        if kind == "small":
            path = _save_kind("png", _picture(rng, 40, 30), folder / name)
        else:
            w, h = int(rng.integers(130, 300)), int(rng.integers(130, 260))
            path = _save_kind(kind, _picture(rng, w, h), folder / name)
            if kind == "jpg-exif-rotated":
                exif.append((path, (h, w)))
        good.append(path)
    bad = []
    bad_dir = root / "a" / "broken"
    bad_dir.mkdir(parents=True)
    (bad_dir / "empty.png").write_bytes(b"")
    (bad_dir / "notes-as.jpg").write_text("these are notes, not a JPEG\n")
    png = io.BytesIO()
    Image.fromarray(_picture(rng, 300, 200)).save(png, "PNG")
    (bad_dir / "truncated.png").write_bytes(png.getvalue()[: len(png.getvalue()) // 2])
    jpg = io.BytesIO()
    Image.fromarray(_picture(rng, 300, 200)).save(jpg, "JPEG", quality=90)
    (bad_dir / "truncated.jpg").write_bytes(jpg.getvalue()[: len(jpg.getvalue()) // 3])
    (bad_dir / "random-bytes.webp").write_bytes(rng.integers(0, 256, 5000).astype(np.uint8).tobytes())
    (bad_dir / "bomb-30000x30000.png").write_bytes(_bomb_png())
    bad = [bad_dir / n for n in BAD]
    # Decoys that must not add records: non-images, a symlink loop, a self-loop, an alias of a real file.
    (root / "README.txt").write_text("not an image")
    (root / "a" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    os.symlink("..", root / "a" / "b" / "loop-up")
    os.symlink("self-loop", root / "a" / "self-loop")
    os.symlink(good[0], root / "a" / "alias-of-first.png")
    return {"root": root, "good": good, "bad": bad, "exif": exif}


def run(*args: str, timeout: int = 120, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, env=ENV, timeout=timeout, **kwargs)


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSONL output, after its header line."""
    header, *records = [json.loads(line) for line in path.read_bytes().split(b"\n") if line]
    assert header.get("ccscore_records") == 1, header
    return records


def tree_digest(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            if p.is_symlink():
                out[str(p)] = "link:" + os.readlink(p)
            else:
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def check_one_record_per_file(records: list[dict], messy: dict) -> None:
    paths = [r["path"] for r in records]
    assert len(paths) == len(set(paths)), [p for p, n in Counter(paths).items() if n > 1][:5]
    real = Counter(os.path.realpath(p) for p in paths)
    expected = {os.path.realpath(p) for p in messy["good"] + messy["bad"]}
    assert set(real) == expected
    assert all(n == 1 for n in real.values())
    by_real = {os.path.realpath(r["path"]): r for r in records}
    labels = set(by_real[os.path.realpath(messy["good"][0])]["scores"])  # the model's, whichever it is
    for p in messy["good"]:
        r = by_real[os.path.realpath(p)]
        assert "error" not in r, r
        assert "clean" in labels and r["label"] in labels and set(r["scores"]) == labels
        assert abs(sum(r["scores"].values()) - 1) < 1e-6 and r["width"] > 0 and r["height"] > 0
    for p in messy["bad"]:
        r = by_real[os.path.realpath(p)]
        assert set(r) == {"path", "error"}, r
        assert r["error"] and "\n" not in r["error"] and "Traceback" not in r["error"]
    for p, (w, h) in messy["exif"]:
        r = by_real[os.path.realpath(p)]
        assert (r["width"], r["height"]) == (w, h)  # EXIF orientation applied


# ---------------------------------------------------------------- the bar


@pytest.fixture(params=["stub", "bundled"])
def any_model(request, stub_model) -> Path:
    """The stub (fast, deterministic) and the shipped model (the real memory and time profile)."""
    if request.param == "stub":
        return stub_model
    bundled = Path(__file__).resolve().parents[1] / "models" / "ccscore-detector.onnx"
    if not bundled.exists():
        pytest.skip("bundled model not built")
    return bundled


def test_killed_run_resumes_to_exactly_one_record_per_file(any_model, messy, tmp_path):
    import psutil

    out = tmp_path / "records.jsonl"
    args = [str(messy["root"]), "--model", str(any_model), "--output", str(out), "--batch-size", "16",
            "--workers", "2"]
    proc = subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    deadline = time.monotonic() + 60
    lines = 0
    while time.monotonic() < deadline and proc.poll() is None:
        lines = out.read_bytes().count(b"\n") if out.exists() else 0
        if lines >= 40:
            break
        time.sleep(0.005)
    children = psutil.Process(proc.pid).children(recursive=True) if proc.poll() is None else []
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    # The pool's processes notice that their parent is gone and exit on their own: no orphans left behind.
    _gone, alive = psutil.wait_procs(children, timeout=10)
    for child in alive:
        child.kill()
    assert not alive, [c.cmdline() for c in alive]
    proc.communicate(timeout=30)
    first = out.read_bytes()
    assert 40 <= first.count(b"\n") < N_GOOD + len(BAD), "the run was not killed midway"
    # A crash in the middle of a write leaves a partial record: simulate one on top of whatever the kill left.
    with open(out, "ab") as f:
        f.write(b'{"path": "' + str(messy["root"]).encode() + b'/half-written.png", "label": "cl')

    refused = run(*args)
    assert refused.returncode == 2 and b"--resume" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and out.read_bytes().startswith(first)

    peak = 0
    resumed = subprocess.Popen([*CLI, *args, "--resume"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    ps = psutil.Process(resumed.pid)
    while resumed.poll() is None:
        try:
            procs = [ps, *ps.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.02)
    stdout, stderr = resumed.communicate(timeout=60)
    assert resumed.returncode == 1, stderr.decode()  # the 6 bad files
    assert b"Traceback" not in stderr
    assert b"incomplete last record" in stderr
    records = read_jsonl(out)
    check_one_record_per_file(records, messy)
    assert peak <= 800 * 2**20, f"peak RSS {peak / 2**20:.0f} MB"
    assert f"{len(BAD)} failed".encode() in stderr


def test_copy_flagged_keeps_relative_paths_and_sources(stub_model, messy, tmp_path):
    before = tree_digest(messy["root"])
    dest = tmp_path / "flagged"
    out = tmp_path / "records.csv"
    proc = run(str(messy["root"]), "--model", str(stub_model), "--output", str(out), "--copy-to", str(dest),
               "--select", "flagged", "--workers", "1")
    assert proc.returncode == 1, proc.stderr.decode()
    assert b"Traceback" not in proc.stderr
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == N_GOOD + len(BAD)
    flagged = {os.path.relpath(r["path"], messy["root"]) for r in rows if r["label"] not in ("", "clean")}
    clean = [r for r in rows if r["label"] == "clean"]
    assert flagged and clean, "the stub model should give a mix"
    copied = {str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()}
    assert copied == flagged
    for rel in flagged:
        assert (dest / rel).read_bytes() == (messy["root"] / rel).read_bytes()
    assert tree_digest(messy["root"]) == before

    # Same again with --resume after deleting the last records: nothing is copied twice.
    lines = out.read_text(encoding="utf-8").splitlines(keepends=True)
    out.write_text("".join(lines[:-50]), encoding="utf-8")
    again = run(str(messy["root"]), "--model", str(stub_model), "--output", str(out), "--copy-to", str(dest),
                "--select", "flagged", "--resume", "--workers", "0")
    assert again.returncode == 0, again.stderr.decode()  # the bad files sit early in the walk, already done
    assert b" 0 copied" in again.stderr and b"already in" in again.stderr
    assert {str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()} == flagged
    with open(out, newline="", encoding="utf-8") as f:
        assert sorted(r["path"] for r in csv.DictReader(f)) == sorted(r["path"] for r in rows)


# ---------------------------------------------------------------- smaller contracts


def _small_set(tmp_path: Path) -> tuple[Path, list[Path]]:
    rng = np.random.default_rng(3)
    root = tmp_path / "in"
    files = []
    for i, sub in enumerate(["", "x", "x/y", "z"]):
        (root / sub).mkdir(parents=True, exist_ok=True)
        p = root / sub / f"same-name.png"
        Image.fromarray(_picture(rng, 150, 140)).save(p)
        files.append(p)
    return root, files


def test_output_order_is_input_order_and_jsonl_goes_to_stdout(stub_model, tmp_path):
    root, files = _small_set(tmp_path)
    listing = tmp_path / "list.txt"
    entries = [str(files[2]), str(files[0]), str(files[2]), str(tmp_path / "missing.png"), str(files[1])]
    listing.write_text("\n".join(entries) + "\n\n")
    for workers in ("0", "2"):
        proc = run("--from-list", str(listing), "--model", str(stub_model), "--jsonl", "--workers", workers,
                   "--batch-size", "8")
        assert proc.returncode == 1
        records = [json.loads(l) for l in proc.stdout.decode().splitlines()]
        assert [r["path"] for r in records] == entries  # list entries: one record each, duplicates included
        assert "no such file" in records[3]["error"]
    stdin = run("--from-list", "-", "--model", str(stub_model), "--jsonl", input="\n".join(entries[:2]).encode())
    assert stdin.returncode == 0 and len(stdin.stdout.splitlines()) == 2


def test_a_line_break_in_a_name_keeps_each_record_one_line_with_its_reason(stub_model, tmp_path):
    """A truncated PNG and a text file whose names hold a line break (one of them crafted to look like another
    error line): their JSONL errors keep the reason, not the name's first line, and readable output escapes the
    names, so every record is one line, with workers or without."""
    folder = tmp_path / "names"
    folder.mkdir()
    png = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 10, 10)).save(png, "PNG")
    (folder / "bad\nname.png").write_bytes(png.getvalue()[:60])
    (folder / "also\nbad: error: fake.png").write_text("not an image")
    (folder / "fine\nname.png").write_bytes(png.getvalue())
    for workers in ("0", "1"):
        lines = run(str(folder), "--model", str(stub_model), "--jsonl", "--workers", workers).stdout.decode()
        errors = {Path(r["path"]).name: r["error"] for r in map(json.loads, lines.splitlines()) if "error" in r}
        assert errors == {"bad\nname.png": "cannot decode image (image file is truncated)",
                          "also\nbad: error: fake.png": "cannot decode image (not an image format Pillow knows)"}
        shown = run(str(folder), "--model", str(stub_model), "--workers", workers)
        assert sorted(line.split(str(folder))[1] for line in shown.stderr.decode().splitlines()
                      if line.startswith(str(folder))) == [
            "/also\\nbad: error: fake.png: error: cannot decode image (not an image format Pillow knows)",
            "/bad\\nname.png: error: cannot decode image (image file is truncated)"]
        assert [line.split(":")[0] for line in shown.stdout.decode().splitlines()] == [f"{folder}/fine\\nname.png"]


def test_actions_never_overwrite_and_dry_run_does_nothing(stub_model, tmp_path):
    root, files = _small_set(tmp_path)
    dest = tmp_path / "out"
    named = [str(f) for f in files]  # named files: relative path = file name, so all four collide
    dry = run(*named, "--model", str(stub_model), "--copy-to", str(dest), "--select", "flagged", "--threshold",
              "0", "--dry-run")
    assert dry.returncode == 0 and not dest.exists()
    plan = [l for l in dry.stdout.decode().splitlines() if l.startswith("would copy")]
    assert [l.rsplit("/", 1)[1] for l in plan] == ["same-name.png", "same-name-1.png", "same-name-2.png",
                                                   "same-name-3.png"]
    dest.mkdir()
    (dest / "same-name.png").write_bytes(b"user's own file")
    link = run(*named, "--model", str(stub_model), "--symlink-to", str(dest), "--threshold", "0")
    assert link.returncode == 0, link.stderr.decode()
    assert (dest / "same-name.png").read_bytes() == b"user's own file"
    links = sorted(p.name for p in dest.iterdir() if p.is_symlink())
    assert links == ["same-name-1.png", "same-name-2.png", "same-name-3.png", "same-name-4.png"]
    assert sorted(os.readlink(dest / n) for n in links) == sorted(str(f.resolve()) for f in files)

    moved = tmp_path / "moved"
    mv = run(str(root), "--model", str(stub_model), "--move-to", str(moved), "--threshold", "0")
    assert mv.returncode == 0
    assert sorted(str(p.relative_to(moved)) for p in moved.rglob("*.png")) == sorted(
        str(f.relative_to(root)) for f in files)
    assert not list(root.rglob("*.png"))


def test_usage_errors_exit_2_with_one_line(stub_model, tmp_path):
    img = tmp_path / "a.png"
    Image.fromarray(np.zeros((50, 50, 3), np.uint8)).save(img)
    for args in (["--resume", str(img)], [], [str(img), "--select", "bogus"],
                 [str(img), "--copy-to", str(tmp_path / "c"), "--move-to", str(tmp_path / "m")],
                 [str(img), "--dry-run"], ["--from-list", str(tmp_path / "nope.txt")]):
        proc = run(*args, "--model", str(stub_model))
        assert proc.returncode == 2, (args, proc.stderr)
        assert b"Traceback" not in proc.stderr
    assert b"Exit status" in run("--help").stdout


def test_csv_and_jsonl_resume_cut_only_a_partial_tail(tmp_path):
    sys.path.insert(0, str(REPO / "runtime"))
    from ccscore.outputs import OutputError, open_output

    labels = ["clean", "jpeg"]
    path = tmp_path / "r.csv"
    writer, done, cut = open_output(str(path), labels, resume=False)
    writer.write_batch([{"path": "a\nb,c.png", "label": "clean", "scores": {"clean": 0.9, "jpeg": 0.1},
                         "width": 1, "height": 2}, {"path": "bad.png", "error": "x: broken"}])
    writer.close()
    good = path.read_bytes()
    path.write_bytes(good + b'"half\nwritten,cl')
    writer, done, cut = open_output(str(path), labels, resume=True)
    writer.close()
    assert done == Counter({"a\nb,c.png": 1, "bad.png": 1}) and cut == len(b'"half\nwritten,cl')
    assert path.read_bytes() == good
    with pytest.raises(OutputError):
        open_output(str(path), labels, resume=False)

    jl = tmp_path / "r.jsonl"
    header = b'{"ccscore_records": 1, "labels": ["clean", "jpeg"]}\n'
    jl.write_bytes(header + b'{"path": "x.png", "error": "e"}\n{"path": "y.p')
    writer, done, cut = open_output(str(jl), labels, resume=True)
    writer.close()
    assert done == Counter({"x.png": 1}) and jl.read_bytes() == header + b'{"path": "x.png", "error": "e"}\n'
    jl.write_bytes(header + b'garbage\n{"path": "x.png", "error": "e"}\n')
    with pytest.raises(OutputError):
        open_output(str(jl), labels, resume=True)


def test_decoding_workers_never_import_onnxruntime():
    # As in a run: the session's onnxruntime is loaded in the main process before workers are replaced.
    code = ("import onnxruntime, ccscore.pipeline as p\n"
            "pool = p.DecodePool(1)\n"
            "print(pool.result(pool.submit('/no/such.png', p.TileSpec('content', 128, {}, None))))\n"
            "maps = open(f'/proc/{pool._workers[0].process.pid}/maps').read()\n"
            "print(sorted({line.split()[-1] for line in maps.splitlines() if 'onnxruntime' in line}))\n"
            "pool.close()\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines() == ["('/no/such.png: no such file', [])", "[]"]  # (result, warnings)


def test_destination_inside_the_input_folder_is_not_walked(stub_model, tmp_path):
    root, files = _small_set(tmp_path)
    dest = root / "x" / "copies"
    proc = run(str(root), "--model", str(stub_model), "--copy-to", str(dest), "--threshold", "0", "--jsonl")
    assert proc.returncode == 0, proc.stderr.decode()
    assert len(proc.stdout.splitlines()) == len(files)
    assert len([p for p in dest.rglob("*.png")]) == len(files)


def test_a_crashing_file_fails_alone(monkeypatch):
    """A file that kills its decoder gets one error record; the files in flight beside it still score."""
    import multiprocessing

    import ccscore.pipeline as pipeline
    from ccscore.inputs import InputItem

    def decode_or_die(path, spec, keep_tiles=False):
        if "crash" in path:
            os._exit(1)
        return f"decoded {path}"  # a string stands for an error record: enough to check order and blame

    monkeypatch.setattr(pipeline, "mp_context", lambda: multiprocessing.get_context("fork"))
    monkeypatch.setattr(pipeline, "decode_one", decode_or_die)
    names = ["a", "b", "crash", "c", "d", "e", "f", "g"]
    spec = pipeline.TileSpec("content", 128, {}, None)
    out = list(pipeline.decode_stream([InputItem(n) for n in names], spec, workers=2, window=8))
    assert [d.item.path for d in out] == names
    assert [d.error for d in out] == [f"decoded {n}" if n != "crash" else
                                      "crash: decoder died on this file (exit status 1: a crash, or the system "
                                      "ran out of memory)" for n in names]


def test_error_only_inputs_are_flushed_batch_by_batch():
    from ccscore.inputs import InputItem
    from ccscore.pipeline import Decoded, batches

    sizes = [len(b) for b in batches((Decoded(InputItem(str(i)), error="bad") for i in range(100)), 8)]
    assert max(sizes) <= 8 and sum(sizes) == 100


def _sleepy_stream(monkeypatch, names, window):
    """decode_stream over fake files: 'slow' takes 0.5 s in its worker, the others return at once."""
    import multiprocessing
    import time

    import ccscore.pipeline as pipeline
    from ccscore.inputs import InputItem

    def decode_or_sleep(path, spec, keep_tiles=False):
        if path == "slow":
            time.sleep(0.5)
        return f"decoded {path}"

    monkeypatch.setattr(pipeline, "mp_context", lambda: multiprocessing.get_context("fork"))
    monkeypatch.setattr(pipeline, "decode_one", decode_or_sleep)
    spec = pipeline.TileSpec("content", 128, {}, None)
    return list(pipeline.decode_stream([InputItem(n) for n in names], spec, workers=2, window=window))


def test_the_stream_is_drained_once_every_input_is_out_and_the_next_image_still_decodes(monkeypatch):
    names = ["a", "slow", "c", "d", "e", "last"]
    out = _sleepy_stream(monkeypatch, names, window=8)
    assert [d.item.path for d in out] == names
    # 'a' waits for 'slow', with nothing left to hand out; 'slow' is followed by images decoded meanwhile.
    assert [d.drained for d in out] == [True, False, False, False, False, True]
    # While inputs remain to be handed out, waiting for the next image is how a batch fills.
    out = _sleepy_stream(monkeypatch, ["a", "slow", "c", "d", "e", "f", "g", "last"], window=2)
    assert [d.drained for d in out][:2] == [False, False] and out[-1].drained


def test_a_drained_stream_cuts_the_batch_short():
    from ccscore.inputs import InputItem
    from ccscore.pipeline import Decoded, batches

    tiles = np.zeros((2, 8, 8, 3), np.uint8)
    stream = [Decoded(InputItem(str(i)), tiles, [(0, 0, 8, 8)] * 2, (8, 8), drained=i in (2, 4)) for i in range(9)]
    # Without the cuts: 0-3 and 4-7 (8 tiles each), then 8.
    assert [[d.item.path for d in b] for b in batches(stream, 8)] == [
        ["0", "1", "2"], ["3", "4"], ["5", "6", "7", "8"]]


# ---------------------------------------------------------------- scoring in the workers (CPU)


@pytest.fixture(scope="module")
def scored_set(tmp_path_factory) -> list[Path]:
    """Clean pictures, JPEGs and WebPs stored as PNG, and a file that is no image: records of every kind."""
    root = tmp_path_factory.mktemp("scored")
    rng = np.random.default_rng(7)
    files = []
    for i in range(12):
        im = Image.fromarray(_picture(rng, 300 + 20 * i, 260))
        if i % 3:
            buf = io.BytesIO()
            im.save(buf, "JPEG" if i % 3 == 1 else "WEBP", quality=60 + 3 * i)
            im = Image.open(buf).convert("RGB")
        files.append(root / f"{i:02d}.png")
        im.save(files[-1])
    (root / "05-broken.png").write_bytes(b"not a png")
    return sorted(root.iterdir())


def _records(scorer, files, workers: int, score_in_workers: bool, **options) -> tuple[list[dict], list]:
    from ccscore.inputs import InputItem
    from ccscore.pipeline import run_pipeline

    pairs = []
    run_pipeline(scorer, [InputItem(str(f)) for f in files], workers, 8, pairs.extend,
                 score_in_workers=score_in_workers, **options)
    return [r for _, r in pairs], [d.scored for d, _ in pairs]


def test_workers_score_as_the_main_process_does(scored_set):
    """On CPU the workers score each image with their own session; every record (details and tiles included)
    is the one the main process's session gives, in the same order."""
    from ccscore import Scorer

    scorer = Scorer(device="cpu", intra_op_threads=1)
    options = {"with_tiles": True, "with_details": True}
    in_workers, by_workers = _records(scorer, scored_set, 2, True, **options)
    in_main, by_main = _records(scorer, scored_set, 2, False, **options)
    assert in_workers == in_main
    assert [r["path"] for r in in_workers] == [str(f) for f in scored_set]
    assert {r.get("label") for r in in_workers} >= {"clean", "jpeg", "webp"}  # a real mix, not one answer
    assert all(s is None for s in by_main)
    assert [s is not None for s in by_workers] == ["error" not in r for r in in_workers]  # the workers scored
    assert in_workers == _records(scorer, scored_set, 0, True, **options)[0]  # no workers: scored here


def test_workers_score_with_settings_changed_after_the_scorer_was_built(scored_set):
    """A Scorer's threshold or grid gate set after construction (as calibration does) is what the workers use."""
    from ccscore import Scorer

    scorer = Scorer(device="cpu", intra_op_threads=1)
    default, _ = _records(scorer, scored_set, 2, True)
    scorer.threshold = 1.0  # everything not certainly clean is flagged
    strict, _ = _records(scorer, scored_set, 2, True)
    assert strict != default  # the setting matters here ...
    assert strict == _records(scorer, scored_set, 2, False)[0]  # ... and the workers applied it


def test_a_replacement_worker_scores_too(scored_set, monkeypatch):
    """A worker killed by a file is replaced by one that is told what to score with before it takes a file."""
    import multiprocessing

    import ccscore.pipeline as pipeline
    from ccscore import Scorer

    scorer = Scorer(device="cpu", intra_op_threads=1)
    expected, _ = _records(scorer, scored_set, 0, True)
    decode = pipeline.decode_one

    def decode_or_die(path, spec, keep_tiles=False):
        if path.endswith("04.png"):
            os._exit(1)
        return decode(path, spec, keep_tiles)

    monkeypatch.setattr(pipeline, "mp_context", lambda: multiprocessing.get_context("fork"))
    monkeypatch.setattr(pipeline, "decode_one", decode_or_die)
    records, by_workers = _records(scorer, scored_set, 2, True)
    died = [i for i, f in enumerate(scored_set) if f.name == "04.png"]
    assert "decoder died on this file" in records[died[0]]["error"]
    assert [r for i, r in enumerate(records) if i not in died] == [r for i, r in enumerate(expected) if i not in died]
    assert all(s is not None for i, (s, r) in enumerate(zip(by_workers, records)) if i > died[0] and "error" not in r)


def test_workers_score_with_the_model_the_main_process_loaded(scored_set, tmp_path, monkeypatch):
    """The workers score with the very model the main process loaded: given by a relative path and the working
    folder changed since, replaced on disk, or deleted, the records stay those of the loaded model (a worker that
    cannot load it decodes only, and the main process scores its images)."""
    from ccscore import Scorer

    model = build_stub_model(tmp_path / "model.onnx")
    # The model named relative to the working folder, changed below.
    scorer = Scorer(os.path.relpath(model), device="cpu", intra_op_threads=1)
    expected, _ = _records(scorer, scored_set, 2, False)
    # (After the forkserver started, in the first folder: its workers find this ccscore on a relative PYTHONPATH.)
    monkeypatch.chdir(tmp_path)
    records, by_workers = _records(scorer, scored_set, 2, True)
    assert records == expected
    assert any(s is not None for s in by_workers)  # still scored in the workers
    build_stub_model(tmp_path / "model.onnx", labels=("clean", "jpeg", "webp"))  # another model, same path
    assert _records(scorer, scored_set, 2, True)[0] == expected
    (tmp_path / "model.onnx").unlink()
    assert _records(scorer, scored_set, 2, True)[0] == expected


def test_warnings_raised_while_scoring_stay_out_of_the_records(scored_set):
    """A record's warnings are its decoding's (Pillow's): a warning raised while scoring (here numpy's overflow in a
    steep grid gate) is not the image's, and a record does not depend on which process scored it."""
    from ccscore import Scorer
    from ccscore.scorer import GridGate

    scorer = Scorer(device="cpu", intra_op_threads=1)
    gate = scorer.grid_gate
    scorer.grid_gate = GridGate(gate.periods, gate.centers, 1e5, gate.weak)  # exp overflows far from a center
    in_workers, by_workers = _records(scorer, scored_set, 2, True)
    assert any(s is not None for s in by_workers)
    assert in_workers == _records(scorer, scored_set, 2, False)[0]
    assert not any("warnings" in r for r in in_workers)


def test_a_kept_pool_scores_with_settings_changed_in_place(scored_set, monkeypatch):
    """Settings changed in place between two runs on one pool (a grid gate's centers edited) reach its workers:
    they are told the values of each run, not handed objects that compare equal to themselves; runs with equal
    settings (Ray's actors run one per batch) build no session again."""
    from ccscore import Scorer
    from ccscore.pipeline import DecodePool

    prepared = []
    prepare = DecodePool._prepare
    monkeypatch.setattr(DecodePool, "_prepare", lambda pool, w, s: (prepared.append(s), prepare(pool, w, s)))
    scorer = Scorer(device="cpu", intra_op_threads=1)
    pool = DecodePool(2)
    try:
        first, _ = _records(scorer, scored_set, 2, True, pool=pool, keep_pool=True)
        assert _records(scorer, scored_set, 2, True, pool=pool, keep_pool=True)[0] == first
        assert len(prepared) == 2  # once per worker
        scorer.grid_gate.centers["jpeg"] = 2.0  # no agreement reaches it: JPEG is gated away
        second, _ = _records(scorer, scored_set, 2, True, pool=pool, keep_pool=True)
    finally:
        pool.close()
    assert len(prepared) == 4
    assert second != first
    assert second == _records(scorer, scored_set, 2, False)[0]


def test_a_scorer_subclass_scores_in_the_main_process(scored_set):
    """A Scorer subclass's overrides cannot travel to a worker's plain Scorer: its images are scored here."""
    from dataclasses import replace

    from ccscore import Scorer

    class Relabelled(Scorer):
        def result(self, *args, **kwargs):
            return replace(super().result(*args, **kwargs), label="relabelled")

    scorer = Relabelled(device="cpu", intra_op_threads=1)
    records, by_workers = _records(scorer, scored_set, 2, True)
    assert all(s is None for s in by_workers)
    assert {r.get("label") for r in records} == {"relabelled", None}


def test_a_worker_that_dies_building_its_scorer_leaves_the_scoring_to_the_main_process(scored_set, monkeypatch):
    """A worker killed while it builds its session (a native crash, the OOM killer) is replaced by one that only
    decodes, and the main process scores: the run goes on with the same records, rather than ending once five
    in a row have died."""
    import multiprocessing

    import ccscore.pipeline as pipeline
    from ccscore import Scorer
    from ccscore.scorer import ScorerSettings

    scorer = Scorer(device="cpu", intra_op_threads=1)
    expected, _ = _records(scorer, scored_set, 0, True)
    monkeypatch.setattr(pipeline, "mp_context", lambda: multiprocessing.get_context("fork"))
    monkeypatch.setattr(ScorerSettings, "build", lambda self, spare=None: os._exit(1))
    records, by_workers = _records(scorer, scored_set, 2, True)
    assert records == expected
    assert all(s is None for s in by_workers)


def test_workers_score_only_where_they_outnumber_the_sessions_threads(scored_set):
    """One worker decoding while this process's session scores beats one that does both in turn (a single file,
    `--workers 1`); so does a session with as many threads as there are workers. Records are the same."""
    from ccscore import Scorer

    one_thread = Scorer(device="cpu", intra_op_threads=1)
    expected, _ = _records(one_thread, scored_set, 0, True)
    for scorer, workers in ((one_thread, 1), (Scorer(device="cpu", intra_op_threads=2), 2)):
        records, by_workers = _records(scorer, scored_set, workers, True)
        assert records == expected and all(s is None for s in by_workers)
    assert any(s is not None for s in _records(one_thread, scored_set, 2, True)[1])


def test_workers_that_all_die_building_their_scorers_do_not_end_the_run(scored_set, monkeypatch):
    """However many workers die building their sessions at once, they had started: the run goes on with the main
    process scoring, and a kept pool does not try those settings again on its next run (Ray's actors run one per
    batch), where each try would cost every worker."""
    import multiprocessing

    import ccscore.pipeline as pipeline
    from ccscore import Scorer
    from ccscore.pipeline import MAX_STARTUP_DEATHS, DecodePool
    from ccscore.scorer import ScorerSettings

    scorer = Scorer(device="cpu", intra_op_threads=1)
    expected, _ = _records(scorer, scored_set, 0, True)
    monkeypatch.setattr(pipeline, "mp_context", lambda: multiprocessing.get_context("fork"))
    monkeypatch.setattr(ScorerSettings, "build", lambda self, spare=None: os._exit(1))
    prepared = []
    prepare = DecodePool._prepare
    monkeypatch.setattr(DecodePool, "_prepare", lambda pool, w, s: (prepared.append(s), prepare(pool, w, s)))
    pool = DecodePool(MAX_STARTUP_DEATHS, ctx=multiprocessing.get_context("fork"))
    try:
        for _ in range(2):
            records, by_workers = _records(scorer, scored_set, MAX_STARTUP_DEATHS, True, pool=pool, keep_pool=True)
            assert records == expected
            assert all(s is None for s in by_workers)
    finally:
        pool.close()
    assert sum(s is not None for s in prepared) <= MAX_STARTUP_DEATHS  # the first run's tries only


def test_a_worker_stuck_building_its_scorer_is_replaced_within_the_file_time_limit(scored_set, monkeypatch):
    """Building a session may hang (the model's folder on a stalled network mount): past the per-file limit the
    worker is killed and the main process scores, as when one dies building it, rather than the run waiting for
    a worker that never says it is ready."""
    import multiprocessing
    import threading

    import ccscore.pipeline as pipeline
    from ccscore import Scorer
    from ccscore.scorer import ScorerSettings

    expected, _ = _records(Scorer(device="cpu", intra_op_threads=1), scored_set, 0, True)
    scorer = Scorer(device="cpu", intra_op_threads=1, file_timeout=2)
    monkeypatch.setattr(pipeline, "mp_context", lambda: multiprocessing.get_context("fork"))
    monkeypatch.setattr(ScorerSettings, "build", lambda self, spare=None: time.sleep(600))
    out = []
    run = threading.Thread(target=lambda: out.append(_records(scorer, scored_set, 2, True)), daemon=True)
    run.start()
    run.join(60)
    assert not run.is_alive(), "the run waits for workers stuck building their scorers"
    records, by_workers = out[0]
    assert records == expected
    assert all(s is None for s in by_workers)


def test_workers_build_their_scorers_while_the_main_process_builds_its_own(scored_set, tmp_path, monkeypatch):
    """Workers started with the model file (`start_workers` where they will likely score) build a spare session
    as they start, keep it until told what to score with, and score with it: one session per worker, records
    as the main process's."""
    import multiprocessing

    from ccscore import Scorer
    from ccscore.model_info import default_model_path
    from ccscore.pipeline import PRELOADING, DecodePool
    from ccscore.scorer import ScorerSettings

    scorer = Scorer(device="cpu", intra_op_threads=1)
    expected, _ = _records(scorer, scored_set, 0, True)
    built = tmp_path / "sessions built"
    blank = ScorerSettings.blank

    def counted(model):
        with open(built, "a") as f:
            f.write(f"{os.getpid()}\n")
        return blank(model)

    monkeypatch.setattr(ScorerSettings, "blank", staticmethod(counted))
    pool = DecodePool(2, 60.0, ctx=multiprocessing.get_context("fork"), preload=str(default_model_path()))
    try:
        deadline = time.monotonic() + 60
        while not all(w.ready for w in pool._workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # the dispatcher had its chance to tell them something
        assert all(w.scoring == PRELOADING for w in pool._workers)  # not told to drop their spares
        records, by_workers = _records(scorer, scored_set, 2, True, pool=pool, keep_pool=True)
    finally:
        pool.close()
    assert records == expected
    assert [s is not None for s in by_workers] == ["error" not in r for r in records]  # the workers scored
    pids = built.read_text().split()
    assert len(pids) == len(set(pids)) == 2  # one session each: the spare was used, not built again


@pytest.mark.parametrize("threads_env, threads", [("0", None), ("", 1), ("", None)])
def test_the_guess_that_workers_will_score_is_the_pipelines_own_rule(monkeypatch, threads_env, threads):
    """`likely_scored_in_workers`, told before any session exists, says what `run_pipeline` decides once it does
    (more workers than the CPU session's threads), CCSCORE_THREADS=0 (one thread per core) and a session's own
    thread count included: a wrong guess builds a spare session in every worker, and delays the workers' start."""
    from ccscore import Scorer
    from ccscore.pipeline import likely_scored_in_workers

    monkeypatch.setenv("CCSCORE_THREADS", threads_env)
    scorer = Scorer(device="cpu", intra_op_threads=threads)
    for workers in range(1, (os.cpu_count() or 1) + 3):
        assert likely_scored_in_workers(workers, "cpu", threads) == (workers > scorer.intra_op_threads), workers


def test_workers_slow_to_build_a_spare_they_are_told_to_drop_do_not_end_the_run(scored_set, monkeypatch):
    """A worker that started (said it is ready) and then outlasts the time limit building a spare scorer it is
    told to drop (the main process scores after all) is replaced like any slow worker: not a sign that workers
    cannot be started, which ends the pool after MAX_STARTUP_DEATHS in a row."""
    import multiprocessing

    from ccscore import Scorer
    from ccscore import pipeline
    from ccscore.model_info import default_model_path
    from ccscore.pipeline import MAX_STARTUP_DEATHS, DecodePool
    from ccscore.scorer import ScorerSettings

    scorer = Scorer(device="cpu", intra_op_threads=1)
    expected, _ = _records(scorer, scored_set, 0, False)
    monkeypatch.setattr(pipeline, "mp_context", lambda: multiprocessing.get_context("fork"))
    monkeypatch.setattr(ScorerSettings, "blank", staticmethod(lambda model: time.sleep(600)))
    pool = DecodePool(MAX_STARTUP_DEATHS, 1.0, ctx=multiprocessing.get_context("fork"),
                      preload=str(default_model_path()))
    records, by_workers = _records(scorer, scored_set, MAX_STARTUP_DEATHS, False, pool=pool)
    assert records == expected
    assert all(s is None for s in by_workers)
