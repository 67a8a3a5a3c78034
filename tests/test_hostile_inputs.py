"""Hostile inputs and dying decoders: every file gets exactly one record, nothing hangs, memory stays bounded.

Decoder deaths, files that decode for minutes, extreme aspect ratios, FIFOs, unreadable files and an early
Ctrl-C. The stub model and the CLI runner come from test_folder_runs.
"""

from __future__ import annotations

import io
import json
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from test_folder_runs import CLI, ENV, _picture, read_jsonl, run, stub_model  # noqa: F401  (stub_model: fixture)


def _pictures(folder: Path, count: int, size: tuple[int, int] = (256, 192)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    paths = []
    for i in range(count):
        path = folder / f"img{i:03d}.png"
        Image.fromarray(_picture(rng, *size)).save(path)
        paths.append(path)
    return paths


def strip_png(width: int, height: int) -> bytes:
    """A width x height RGB PNG built with zlib: a 1 x 20,000,000 strip is ~80 KB and costs a second to write."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\0" + bytes(range(256)) * (3 * width // 256) + bytes(3 * width % 256)
    z = zlib.compressobj(9)
    data = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def many_scans_jpeg(scans: int = 20000, side: int = 2048) -> bytes:
    """A valid progressive JPEG with `scans` scans: one AC scan of a flat image repeated. Each scan is ~12 bytes
    (one end-of-band run per 32767 blocks) but makes libjpeg walk every block again: minutes of decoding."""
    buf = io.BytesIO()
    Image.new("L", (side, side), 128).save(buf, "JPEG", progressive=True, quality=90)
    data = buf.getvalue()
    pos, sos = 2, []
    while data[pos + 1] != 0xD9:  # marker segments up to EOI; a scan's data runs to the next non-RST marker
        end = pos + 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if data[pos + 1] == 0xDA:
            while not (data[end] == 0xFF and data[end + 1] not in (0x00, *range(0xD0, 0xD8))):
                end += 1
            sos.append(data[pos:end])
        pos = end
    ac_scans = [s for s in sos if s[4 + 1 + 2 * s[4]] > 0]  # spectral start > 0
    return data[:pos] + min(ac_scans, key=len) * scans + b"\xff\xd9"


def _decode_workers(pid: int) -> list[int]:
    """The decode processes of the run `pid`: its forked children, and those its forkserver started later."""
    import psutil

    workers = []
    try:
        for child in psutil.Process(pid).children():
            cmdline = " ".join(child.cmdline())
            if "forkserver" in cmdline:
                workers += [c.pid for c in child.children()]
            elif "resource_tracker" not in cmdline:
                workers.append(child.pid)
    except psutil.NoSuchProcess:
        pass
    return workers


# ---------------------------------------------------------------- dying and stuck decoders


def test_workers_killed_mid_run_cost_only_their_files(stub_model, tmp_path):
    """SIGKILL every decode worker twice while a folder run is under way: it still ends with one record per
    file; the files in flight, and only they, get a 'decoder died' record (exit 1)."""
    files = _pictures(tmp_path / "in", 80, (512, 384))
    out = tmp_path / "out.jsonl"
    proc = subprocess.Popen([*CLI, str(tmp_path / "in"), "--model", str(stub_model), "--output", str(out),
                             "--workers", "2"], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        killed = 0
        for _ in range(2):
            deadline = time.monotonic() + 60
            while (not out.exists() or out.stat().st_size < 1000) and time.monotonic() < deadline:
                time.sleep(0.02)
            for pid in _decode_workers(proc.pid):
                os.kill(pid, signal.SIGKILL)
                killed += 1
            time.sleep(1.0)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert killed >= 2
    assert b"Traceback" not in stderr, stderr.decode()
    records = read_jsonl(out)
    assert sorted(r["path"] for r in records) == sorted(map(str, files))
    errors = [r for r in records if "error" in r]
    assert all("decoder died on this file (killed by signal 9" in r["error"] for r in errors), errors
    assert len(errors) <= killed and len(records) - len(errors) >= len(files) - killed
    assert proc.returncode == (1 if errors else 0), stderr.decode()


def test_a_decoder_killed_on_a_file_is_replaced(monkeypatch):
    """The worker that dies on a file (SIGKILL, as the OOM killer sends) is replaced; that file alone gets a
    record saying so, in input order, and the next worker decodes the rest."""
    import multiprocessing

    import ccscore.pipeline as pipeline
    from ccscore.inputs import InputItem

    def decode_or_die(path, spec, keep_tiles=False):
        if path.startswith("die"):
            os.kill(os.getpid(), signal.SIGKILL)
        return f"decoded {path} in {os.getpid()}"

    monkeypatch.setattr(pipeline, "mp_context", lambda: multiprocessing.get_context("fork"))
    monkeypatch.setattr(pipeline, "decode_one", decode_or_die)
    names = ["a", "die1", "b", "c", "die2", "die3", "d"]
    spec = pipeline.TileSpec("content", 128, {}, None)
    out = list(pipeline.decode_stream([InputItem(n) for n in names], spec, workers=1, window=4))
    assert [d.item.path for d in out] == names
    for name, d in zip(names, out):
        if name.startswith("die"):
            assert d.error == f"{name}: decoder died on this file (killed by signal 9: a crash, or the system ran " \
                              "out of memory)"
        else:
            assert d.error.startswith(f"decoded {name} in ")
    assert len({d.error.rsplit(" ", 1)[1] for d in out if not d.item.path.startswith("die")}) == 3  # replaced


def test_a_file_past_the_time_limit_is_killed_and_recorded_as_too_slow(stub_model, tmp_path):
    """A progressive JPEG with 20,000 scans decodes for minutes: with --file-timeout 2 it ends as a 'too slow'
    record within seconds, its worker replaced, and every other file is scored."""
    files = _pictures(tmp_path / "in", 12)
    slow = tmp_path / "in" / "img005-scans.jpg"
    slow.write_bytes(many_scans_jpeg())
    start = time.monotonic()
    proc = run(str(tmp_path / "in"), "--model", str(stub_model), "--jsonl", "--workers", "2", "--file-timeout", "2",
               timeout=120)
    elapsed = time.monotonic() - start
    assert proc.returncode == 1, proc.stderr.decode()
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["path"] for r in records] == sorted(map(str, files + [slow]))
    by_path = {r["path"]: r for r in records}
    assert by_path[str(slow)] == {"path": str(slow), "error": "too slow: its worker took over 2 s on it (--file-timeout)"}
    assert all("label" in by_path[str(p)] for p in files)
    assert elapsed < 30  # the file alone decodes for minutes


def test_a_single_slow_file_on_the_command_line_is_stopped_too(stub_model, tmp_path):
    """A file or two named on the command line still decode in a worker, so the time limit holds for them."""
    slow = tmp_path / "scans.jpg"
    slow.write_bytes(many_scans_jpeg())
    start = time.monotonic()
    proc = run(str(slow), "--model", str(stub_model), "--jsonl", "--file-timeout", "1", timeout=120)
    assert proc.returncode == 1, proc.stderr.decode()
    assert json.loads(proc.stdout)["error"].endswith("too slow: its worker took over 1 s on it (--file-timeout)")
    assert time.monotonic() - start < 30


def test_a_time_limit_asked_for_with_no_workers_is_refused_not_dropped(stub_model, tmp_path):
    """With --workers 0 files decode in this process, where no limit can stop a decoder: an explicit --file-timeout
    is a usage error (it was ignored in silence), and without one (or at 0) the run goes on without a limit."""
    picture = tmp_path / "p.png"
    Image.new("RGB", (64, 64), (200, 10, 10)).save(picture)
    refused = run(str(picture), "--model", str(stub_model), "--jsonl", "--workers", "0", "--file-timeout", "5")
    assert refused.returncode == 2 and refused.stdout == b""
    assert refused.stderr.decode().strip().splitlines() == [
        "ccscore: error: --file-timeout needs worker processes: with --workers 0 every file decodes in this process, "
        "where no time limit can stop it"]
    for extra in ([], ["--file-timeout", "0"]):
        scored = run(str(picture), "--model", str(stub_model), "--jsonl", "--workers", "0", *extra)
        assert scored.returncode == 0 and json.loads(scored.stdout)["label"] in ("clean", "jpeg", "webp")


# ---------------------------------------------------------------- extreme shapes


def _cap_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))


DECODE_PEAK = """
import json, resource, sys
from ccscore.images import load_image
from ccscore.tiling import make_tiles
image = load_image(sys.argv[1])  # decoded once (a 20,000,000-row PNG takes seconds), tiled both ways
shapes = {name: list(make_tiles(image, name, tile).pixels.shape) for name, tile in json.loads(sys.argv[2])}
print(json.dumps([shapes, image.size, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024]))
"""


@pytest.mark.parametrize("width,height", [(1, 20_000_000), (20_000_000, 1)])
def test_a_strip_image_tiles_in_bounded_memory(tmp_path, width, height):
    """A 1 x 20,000,000 PNG (80 KB) once took 11.4 GB to pad into a tile: it must stay under 1 GB with either
    tiling (and the process is capped at 3 GB of address space, so that a regression fails rather than swaps)."""
    path = tmp_path / f"strip-{width}x{height}.png"
    path.write_bytes(strip_png(width, height))
    tilings = {"content": 128, "city96_fivecrop": 224}
    proc = subprocess.run([sys.executable, "-c", DECODE_PEAK, str(path), json.dumps(list(tilings.items()))],
                          capture_output=True, text=True, env=ENV, timeout=300, preexec_fn=_cap_address_space)
    assert proc.returncode == 0, proc.stderr
    shapes, size, peak = json.loads(proc.stdout)
    # A 1 px side cannot show a block grid: the content tiling gives no tile (the result says "no evidence").
    assert shapes == {"content": [0, 128, 128, 3], "city96_fivecrop": [1, 224, 224, 3]} and size == [width, height]
    assert peak < 1 << 30, f"peak RSS {peak / 2**20:.0f} MB"


def test_a_strip_image_gets_its_record(stub_model, tmp_path):
    path = tmp_path / "strip.png"
    path.write_bytes(strip_png(20_000_000, 1))
    proc = run(str(path), "--model", str(stub_model), "--jsonl", timeout=300, preexec_fn=_cap_address_space)
    assert proc.returncode == 0, proc.stderr.decode()
    record = json.loads(proc.stdout)
    assert (record["width"], record["height"]) == (20_000_000, 1) and record["label"]


# ---------------------------------------------------------------- files that are not regular files


def test_a_fifo_named_on_the_command_line_gets_a_record_not_a_hang(stub_model, tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    good = _pictures(tmp_path / "in", 1)[0]
    for workers in ("0", "1"):
        proc = run(str(fifo), str(good), "--model", str(stub_model), "--jsonl", "--workers", workers, timeout=60)
        assert proc.returncode == 1, proc.stderr.decode()
        first, second = [json.loads(line) for line in proc.stdout.splitlines()]
        assert first == {"path": str(fifo), "error": f"{fifo} is a FIFO, not a regular file"}
        assert "label" in second


SWAP_AFTER_LISTING = """
import os, sys
from ccscore.inputs import iter_inputs
from ccscore.pipeline import TileSpec, decode_stream
items = list(iter_inputs([sys.argv[1]]))
for item in items:  # listed as regular files; swapped for FIFOs (nobody ever writes to them) before decoding
    os.remove(item.path)
    os.mkfifo(item.path)
for d in decode_stream(items, TileSpec("content", 128, {}, None), workers=int(sys.argv[2])):
    print(d.error)
"""


@pytest.mark.parametrize("workers", ["0", "1"])
def test_a_fifo_swapped_in_after_listing_gets_a_record_not_a_hang(tmp_path, workers):
    paths = _pictures(tmp_path / "in", 2)
    proc = subprocess.run([sys.executable, "-c", SWAP_AFTER_LISTING, str(tmp_path / "in"), workers],
                          capture_output=True, text=True, env=ENV, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"{p} is a FIFO, not a regular file" for p in paths]


def _as_unreadable(cmd: list[str], path: Path) -> list[str]:
    """`cmd` run so that `path` cannot be read. Root reads any file, so as root the file goes to a user id that
    a user namespace (unshare --map-root-user) leaves unmapped: there root's override does not reach it."""
    if os.geteuid() != 0:
        path.chmod(0)
        return cmd
    if shutil.which("unshare") is None:
        pytest.skip("running as root without unshare: no way to make a file unreadable")
    os.chown(path, 54321, 54321)
    path.chmod(0)
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "cat", str(path)], capture_output=True)
    if probe.returncode == 0 or b"Permission denied" not in probe.stderr:
        pytest.skip(f"user namespaces unavailable: {probe.stderr.decode().strip()}")
    return ["unshare", "--user", "--map-root-user", *cmd]


@pytest.mark.parametrize("workers", ["0", "1"])
def test_an_unreadable_file_on_the_command_line_gets_its_record(stub_model, tmp_path, workers):
    locked, good = _pictures(tmp_path / "in", 2)
    cmd = _as_unreadable([*CLI, str(locked), str(good), "--model", str(stub_model), "--jsonl", "--workers", workers],
                         locked)
    proc = subprocess.run(cmd, capture_output=True, env=ENV, timeout=120)
    assert proc.returncode == 1, proc.stderr.decode()
    first, second = [json.loads(line) for line in proc.stdout.splitlines()]
    assert first == {"path": str(locked), "error": "permission denied"}  # the record names the path once
    assert second["path"] == str(good) and "label" in second


# ---------------------------------------------------------------- Ctrl-C


def test_ctrl_c_at_any_moment_exits_130_without_a_traceback(stub_model, tmp_path):
    """From just after the handler can exist (before, Python itself owns SIGINT: the time a bare interpreter
    takes to import `signal`) through start-up and into the run, where a decoder is stuck on a file for minutes."""
    _pictures(tmp_path / "in", 20)
    (tmp_path / "in" / "000-scans.jpg").write_bytes(many_scans_jpeg())
    start = time.monotonic()
    subprocess.run([sys.executable, "-c", "import signal"], check=True, env=ENV)
    interpreter = time.monotonic() - start
    for delay in (0.03, 0.06, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 3.0):
        proc = subprocess.Popen([*CLI, str(tmp_path / "in"), "--model", str(stub_model), "--jsonl", "--workers", "1",
                                 "--file-timeout", "0"], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(interpreter + delay)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=20)  # the stuck file alone decodes for minutes
        assert (proc.returncode, b"Traceback" in stderr) == (130, False), (delay, stderr.decode())
        assert stderr.decode().splitlines()[-1].startswith("ccscore: interrupted"), (delay, stderr.decode())


def test_a_failed_decode_pool_is_a_ccscore_error_with_one_line():
    """When no worker can be started, waiting for a result raises DecodePoolError (the CLI ends on its one line,
    records so far kept), not a bare RuntimeError that would end the run with a traceback."""
    import ccscore.pipeline as p
    from ccscore.errors import CCScoreError, DecodePoolError

    pool = p.DecodePool(1)
    try:
        ticket = pool.submit("/no/such.png", p.TileSpec("content", 128, {}, None))
        pool.result(ticket)
        pool._failure = OSError(11, "Resource temporarily unavailable")  # as fork() fails under a process limit
        with pytest.raises(DecodePoolError, match="decode workers failed: .*Resource temporarily") as caught:
            pool.result(pool.submit("/no/such.png", p.TileSpec("content", 128, {}, None)) + 1)
        assert isinstance(caught.value, CCScoreError) and "\n" not in str(caught.value)
    finally:
        pool.close()


def test_workers_that_die_while_starting_end_the_pool_instead_of_hanging(monkeypatch):
    """No memory or processes left: every new worker dies before it is ready. Replacing them forever would hang
    the run; after a few in a row the pool fails, and the wait for a result ends with DecodePoolError."""
    import multiprocessing

    import ccscore.pipeline as p
    from ccscore.errors import DecodePoolError

    fork = multiprocessing.get_context("fork")  # runs the patched worker function below; forkserver would not
    monkeypatch.setattr(p, "mp_context", lambda: fork)
    monkeypatch.setattr(p, "_worker_main", lambda conn: os._exit(3))
    pool = p.DecodePool(1, ctx=fork)
    try:
        start = time.monotonic()
        with pytest.raises(DecodePoolError, match="5 decode workers in a row died while starting"):
            pool.result(pool.submit("/no/such.png", p.TileSpec("content", 128, {}, None)))
        assert time.monotonic() - start < 30
    finally:
        pool.close()


def test_a_forked_worker_whose_creator_is_already_gone_exits():
    """A worker forked just before its creator is killed (Ctrl-C at that moment) holds both ends of its pipe, so it
    never reads EOF: it must not take its adopter for its parent. Told a creator that is not its parent, it exits."""
    import multiprocessing

    from ccscore import pipeline

    ctx = multiprocessing.get_context("fork")
    ours, theirs = ctx.Pipe()
    worker = ctx.Process(target=pipeline._worker_main, args=(theirs, None, os.getpid() + 10**6), daemon=True)
    worker.start()
    worker.join(timeout=10)
    alive = worker.is_alive()
    if alive:
        worker.kill()
    assert not alive and worker.exitcode == 0
