"""Ray Data: `ccscore.ray.Scorer` in `Dataset.map_batches`, and `ccscore ray` on tar shards, Parquet files and
a folder; results equal the single-process command's for every key, and a rerun after SIGKILL adds no key
twice. One local cluster (2 CPUs) for the module; `ccscore ray` also starts its own once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("ray.data")
pytest.importorskip("pyarrow")

from test_shards import bench  # noqa: E402  (the benchmark's dataset builder and comparison)

REPO = Path(__file__).resolve().parents[1]


def env() -> dict:
    """Read at each call: joining the module's cluster takes what ray.init put in this process's environment."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "runtime"), os.environ.get("PYTHONPATH", "")]),
            "RAY_USAGE_STATS_ENABLED": "0"}


CLI = [sys.executable, "-c", "import sys; from ccscore.cli import main; main(sys.argv[1:])"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    """3 tar shards and 2 Parquet files of 6 images each, a folder of 5 files, and the command line's records."""
    folder = tmp_path_factory.mktemp("raydata")
    pairs = list(bench.encoded_images(35, (160, 144), seed=7, distinct=7))
    inputs = []
    for k in range(3):
        inputs.append(folder / f"s{k}.tar")
        bench.write_tar(inputs[-1], pairs[6 * k:6 * k + 6])
    for k in range(2):
        inputs.append(folder / f"p{k}.parquet")
        bench.write_parquet(inputs[-1], pairs[18 + 6 * k:24 + 6 * k])
    files = folder / "files"
    files.mkdir()
    for name, data in pairs[30:]:
        (files / name).write_bytes(data)
    (files / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    inputs.append(files)
    out = subprocess.run([*CLI, *map(str, inputs), "--jsonl", "--workers", "2"], capture_output=True, env=env(),
                         timeout=120)
    assert out.returncode == 1, out.stderr  # broken.png
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(records) == 36
    return {"folder": folder, "inputs": [str(p) for p in inputs], "cli": records}


def ray_cmd(data: dict, out: Path, *extra: str) -> list[str]:
    return [*CLI, "ray", *data["inputs"], "--output", str(out), "--files-per-shard", "3", *extra]


def test_ccscore_ray_on_a_local_cluster_equals_the_command_line(data, tmp_path):
    out = tmp_path / "scores"
    run = subprocess.run(ray_cmd(data, out), capture_output=True, env=env(), timeout=300)
    assert run.returncode == 1, run.stderr.decode()[-3000:]  # broken.png: one error record
    assert b"35 scored, 1 failed" in run.stderr
    assert sorted(p.name for p in out.glob("*.parquet")) == sorted(
        ["s0.tar.parquet", "s1.tar.parquet", "s2.tar.parquet", "p0.parquet.parquet", "p1.parquet.parquet",
         "files-00000.parquet", "files-00001.parquet"])
    assert bench.compare(data["cli"], bench.ray_records(out)) == []
    # Started again, every shard is complete: nothing is redone.
    again = subprocess.run(ray_cmd(data, out), capture_output=True, env=env(), timeout=300)
    assert again.returncode == 0 and b"7 were complete already" in again.stderr, again.stderr.decode()[-2000:]


@pytest.fixture(scope="module")
def cluster():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def test_scorer_class_in_map_batches_equals_the_command_line(data, cluster):
    """The public callable class in a Ray Data pipeline of its own: key and bytes columns in, records out."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import ray

    import ccscore.ray

    # From Arrow tables, not read_parquet: Ray's path resolution trips over an fsspec without aiohttp.
    tables = []
    for path in (p for p in data["inputs"] if p.endswith(".parquet")):
        t = pq.read_table(path, columns=["key", "jpg"])
        tables.append(t.set_column(0, "key", pa.array([f"{path}/{k}" for k in t.column("key").to_pylist()])))
    ds = ray.data.from_arrow(tables)
    scored = ds.map_batches(ccscore.ray.Scorer, fn_constructor_kwargs={"image_column": "jpg", "decode_workers": 1},
                            compute=ray.data.ActorPoolStrategy(size=1), batch_size=4,
                            batch_format="pyarrow").take_all()
    records = [{"path": r["path"], "label": r["label"],
                "scores": {k[6:]: v for k, v in r.items() if k.startswith("score_")}} for r in scored]
    expected = [r for r in data["cli"] if ".parquet/" in r["path"]]
    assert len(records) == 12 and bench.compare(expected, records) == []


def test_rerun_after_sigkill_ends_with_every_key_once(data, cluster, tmp_path):
    out = tmp_path / "killed"
    cmd = ray_cmd(data, out, "--address", cluster, "--batch-size", "1")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env())
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline and not list(out.glob("*.parquet")):
        time.sleep(0.02)
    exited = proc.poll()
    proc.send_signal(signal.SIGKILL)
    stderr = proc.communicate()[1].decode()
    written = len(list(out.glob("*.parquet")))
    assert exited is None and 1 <= written < 7, f"{written} of 7 shards written, exit {exited}: {stderr[-3000:]}"
    rerun = subprocess.run(cmd, capture_output=True, env=env(), timeout=300)
    assert rerun.returncode == 1, rerun.stderr.decode()[-3000:]
    assert f"{written} were complete already".encode() in rerun.stderr
    records = bench.ray_records(out)
    assert Counter(r["path"] for r in records) == Counter(r["path"] for r in data["cli"])
    assert bench.compare(data["cli"], records) == []
    assert not [p for p in os.listdir(out) if "ccscore-new" in p]


def test_without_ray_the_command_says_how_to_install_it(tmp_path):
    from conftest import run_cli

    out = run_cli("ray", str(tmp_path), "--output", str(tmp_path / "o"), blocked=("torch", "ray"))
    assert out.returncode == 2 and "pip install 'ccscore[ray]'" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_scorer_class_keeps_every_limit_on_hostile_rows(tmp_path):
    """Called as Ray calls it, on one batch: a bomb, bytes that are no image, a null image, a reader's error and
    a good image each get their record, in order, and the batch's other columns ride along."""
    import pyarrow as pa

    import ccscore.ray
    from test_folder_runs import _bomb_png

    good = next(bench.encoded_images(1, (160, 144)))[1]
    batch = pa.table({"key": ["bomb", "text", "null", "unreadable", "good"],
                      "image": [_bomb_png(), b"hello", None, None, good],
                      "error": [None, None, None, "cannot read: Permission denied", None],
                      "caption": ["a", "b", "c", "d", "e"]})
    scorer = ccscore.ray.Scorer(max_pixels=1_000_000, decode_workers=1)
    out = scorer(batch).to_pylist()
    assert [r["path"] for r in out] == ["bomb", "text", "null", "unreadable", "good"]
    assert [r["caption"] for r in out] == ["a", "b", "c", "d", "e"]
    assert "--max-pixels" in out[0]["error"] and "not an image format" in out[1]["error"]
    assert "null" in out[2]["error"] and out[3]["error"] == "cannot read: Permission denied"
    assert out[4]["error"] is None and out[4]["label"] in scorer.labels and out[4]["width"] == 160
    # A second batch reuses the same session and decoding processes.
    assert scorer(batch.slice(4)).to_pylist()[0]["label"] == out[4]["label"]
    scorer.pool.close()


def test_usage_errors_come_before_any_cluster(data, tmp_path):
    """Two inputs that would write one file, and a DIR holding another model's records: one line, exit 2."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    other = tmp_path / "other"
    other.mkdir()
    twin = other / "s0.tar"
    twin.write_bytes(Path(data["inputs"][0]).read_bytes())
    clash = subprocess.run([*CLI, "ray", data["inputs"][0], str(twin), "--output", str(tmp_path / "o")],
                           capture_output=True, text=True, env=env(), timeout=120)
    assert clash.returncode == 2 and "would both write s0.tar.parquet" in clash.stderr, clash.stderr
    out = tmp_path / "foreign"
    out.mkdir()
    pq.write_table(pa.table({"path": ["x"]}, metadata={"ccscore_records": "1", "labels": '["a", "b"]'}),
                   out / "s0.tar.parquet")
    foreign = subprocess.run([*CLI, "ray", data["inputs"][0], "--output", str(out)], capture_output=True, text=True,
                             env=env(), timeout=120)
    assert foreign.returncode == 2 and "another model" in foreign.stderr, foreign.stderr
    for run in (clash, foreign):
        assert len(run.stderr.strip().splitlines()) == 1
