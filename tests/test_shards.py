"""Tar shards and Parquet files as inputs, and Parquet as an output, through the single-process command."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import run_cli
from test_folder_runs import _bomb_png, stub_model  # noqa: F401  (stub_model: a fixture)

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("ray_throughput", REPO / "benchmarks" / "ray_throughput.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    """Two tar shards and a Parquet file of 8 images each, and the same 24 images as plain files."""
    folder = tmp_path_factory.mktemp("shards")
    pairs = list(bench.encoded_images(24, (192, 160), seed=3, distinct=6))
    files = folder / "files"
    files.mkdir()
    for name, data in pairs:
        (files / name).write_bytes(data)
    bench.write_tar(folder / "a.tar", pairs[:8])
    bench.write_tar(folder / "b.tar", pairs[8:16])
    bench.write_parquet(folder / "c.parquet", pairs[16:])
    return {"folder": folder, "pairs": pairs, "files": files,
            "shards": [folder / "a.tar", folder / "b.tar", folder / "c.parquet"]}


def jsonl(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_members_are_scored_like_the_same_files(data):
    """Each image member gets one record keyed SHARD/MEMBER (Parquet: FILE/KEY), scored exactly as the same
    bytes stored as a file; captions and metadata members are skipped and counted."""
    shards = [str(s) for s in data["shards"]]
    out = run_cli(*shards, "--jsonl", "--workers", "2")
    assert out.returncode == 0, out.stderr
    records = jsonl(out.stdout)
    names = [n for n, _ in data["pairs"]]
    expected = ([f"{shards[0]}/{n}" for n in names[:8]] + [f"{shards[1]}/{n}" for n in names[8:16]]
                + [f"{shards[2]}/{n.rsplit('.', 1)[0]}" for n in names[16:]])
    assert [r["path"] for r in records] == expected
    assert "32 files skipped (not images)" in out.stderr  # a .txt and a .json per tar member
    as_files = {Path(r["path"]).name: r for r in jsonl(run_cli(str(data["files"]), "--jsonl").stdout)}
    for record, name in zip(records, names):
        twin = as_files[name]
        assert {k: v for k, v in record.items() if k != "path"} == {k: v for k, v in twin.items() if k != "path"}


def test_hostile_members_get_one_line_error_records(tmp_path):
    """A member that is not an image, a decompression bomb, a shard cut short, a FIFO named .tar and a Parquet
    file whose bytes column is null: one error record each, the rest scored, exit 1."""
    good = next(bench.encoded_images(1, (128, 128)))[1]
    bench.write_tar(tmp_path / "s.tar", [("ok.jpg", good), ("text.png", b"not an image"),
                                         ("bomb.png", _bomb_png())])
    whole = (tmp_path / "s.tar").read_bytes()
    (tmp_path / "cut.tar").write_bytes(whole[:1024 + 600])  # inside the first member's data
    os.mkfifo(tmp_path / "fifo.tar")
    pq.write_table(pa.table({"key": ["x", "y"], "img": [good, None]}), tmp_path / "p.parquet")
    pq.write_table(pa.table({"a": [1]}), tmp_path / "nobytes.parquet")
    names = ["s.tar", "cut.tar", "fifo.tar", "p.parquet", "nobytes.parquet"]
    out = run_cli(*[str(tmp_path / n) for n in names], "--jsonl", "--max-pixels", "1000000", timeout=60)
    assert out.returncode == 1, out.stderr
    records = {r["path"][len(str(tmp_path)) + 1:]: r for r in jsonl(out.stdout)}
    assert "label" in records["s.tar/ok.jpg"] and "label" in records["p.parquet/x"]
    assert "not an image format" in records["s.tar/text.png"]["error"]
    assert "--max-pixels" in records["s.tar/bomb.png"]["error"]
    assert "truncated" in records["cut.tar/ok.jpg"]["error"]  # its bytes end early
    assert "cannot read tar shard: unexpected end of data" == records["cut.tar"]["error"]
    assert "not a regular file" in records["fifo.tar"]["error"]
    assert "null" in records["p.parquet/y"]["error"]
    assert "--image-column" in records["nobytes.parquet"]["error"]
    for r in records.values():
        assert "\n" not in r.get("error", "") and str(tmp_path) not in r.get("error", "")


def test_resume_is_per_record_key(data, stub_model, tmp_path):
    out = tmp_path / "s.jsonl"
    args = [*map(str, data["shards"]), "--model", str(stub_model), "--output", str(out)]
    assert run_cli(*args).returncode == 0
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:11]) + lines[11][:20])  # a kill after 10 records, mid-write
    resumed = run_cli(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "10 already in" in resumed.stderr
    keys = Counter(json.loads(line)["path"] for line in out.read_bytes().splitlines()[1:])
    assert len(keys) == 24 and set(keys.values()) == {1}


def test_parquet_output_resumes_after_a_kill_and_after_it_is_finished(data, stub_model, tmp_path):
    out = tmp_path / "s.parquet"
    records = Path(str(out) + ".ccscore-records.csv")
    args = [*map(str, data["shards"]), "--model", str(stub_model), "--output", str(out)]
    # A run killed midway leaves its records beside the output (the Parquet file comes at the end).
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from ccscore.cli import main; main(sys.argv[1:])",
                             *args, "--batch-size", "1", "--workers", "1"], stderr=subprocess.PIPE)
    while proc.poll() is None and (not records.exists() or records.read_bytes().count(b"\n") < 6):
        time.sleep(0.005)
    proc.kill()
    proc.wait()
    assert not out.exists() and records.exists(), "the run was not killed midway"
    refused = run_cli(*args)
    assert refused.returncode == 2 and "--resume" in refused.stderr and len(refused.stderr.splitlines()) == 1
    assert run_cli(*args, "--resume").returncode == 0
    assert not records.exists()
    table = pq.read_table(out)
    assert Counter(table.column("path").to_pylist()) == Counter(
        {p: 1 for p in table.column("path").to_pylist()}) and table.num_rows == 24
    assert table.schema.field("score_jpeg").type == pa.float64()
    # Resuming a finished output adds only what is new, each key once.
    more = tmp_path / "more.tar"
    bench.write_tar(more, data["pairs"][:3])
    again = run_cli(*args, str(more), "--resume")
    assert again.returncode == 0, again.stderr
    paths = pq.read_table(out).column("path").to_pylist()
    assert len(paths) == 27 == len(set(paths))
    # Not ours: refused, untouched.
    pq.write_table(pa.table({"path": ["x"]}), tmp_path / "other.parquet")
    before = (tmp_path / "other.parquet").read_bytes()
    foreign = run_cli(str(data["shards"][0]), "--output", str(tmp_path / "other.parquet"), "--resume")
    assert foreign.returncode == 2 and (tmp_path / "other.parquet").read_bytes() == before


def test_actions_refuse_shards_and_pyarrow_is_an_extra(data, tmp_path):
    out = run_cli(str(data["shards"][0]), "--copy-to", str(tmp_path / "dest"))
    assert out.returncode == 2 and "never acted on" in out.stderr and len(out.stderr.splitlines()) == 1
    assert not (tmp_path / "dest").exists()
    missing = run_cli(str(data["shards"][2]), blocked=("torch", "pyarrow"))
    assert missing.returncode == 2 and "pip install 'ccscore[parquet]'" in missing.stderr
    assert len(missing.stderr.splitlines()) == 1
    # Tar shards need nothing extra; importing ccscore imports neither pyarrow nor ray.
    assert run_cli(str(data["shards"][0]), blocked=("torch", "pyarrow", "ray")).returncode == 0
    probe = subprocess.run([sys.executable, "-c", "import sys, ccscore, ccscore.cli, ccscore.shards, ccscore.outputs; "
                            "print(sorted(m for m in ('pyarrow', 'ray') if m in sys.modules))"],
                           capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO / "runtime")})
    assert probe.stdout.strip() == "[]", probe.stderr


def test_a_members_header_facts_are_read_from_the_shard(tmp_path):
    """`container` comes from the member's own bytes, read in place, as it does from a file."""
    import tarfile

    import numpy as np
    from PIL import Image

    art = (np.random.default_rng(0).random((200, 240, 3)) * 255).astype(np.uint8)
    Image.fromarray(art).save(tmp_path / "x.jpg", quality=70)
    Image.fromarray(art).save(tmp_path / "y.png")
    with tarfile.open(tmp_path / "s.tar", "w") as tar:
        for name in ("y.png", "x.jpg"):
            tar.add(tmp_path / name, arcname=name)
    run = run_cli(str(tmp_path / "s.tar"), "--jsonl")
    assert run.returncode == 0, run.stderr
    records = {Path(r["path"]).name: r for r in map(json.loads, run.stdout.splitlines())}
    assert records["x.jpg"]["container"]["format"] == "jpeg" and records["x.jpg"]["container"]["quality"] == 70
    assert records["y.png"]["container"]["format"] == "png"
