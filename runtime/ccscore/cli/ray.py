"""`ccscore ray INPUT... --output DIR`: score folders, tar shards and Parquet files with Ray Data, on a local
cluster or an existing one (--address), writing one Parquet file of records per input shard.

- Units of work: each tar shard and each Parquet file is one; a folder's images (walked as the command line
  walks them) are cut into units of --files-per-shard files, in walk order. Unit NAME's records go to
  DIR/NAME.parquet (a tar shard `s/0001.tar`: DIR/0001.tar.parquet; a folder `photos`: DIR/photos-00000.parquet).
- A unit's file is written under a temporary name and renamed once all its records are in (records reach
  this process in input order, so a unit is complete when the next one starts): a file under its own name is
  complete, and a run started again (after a kill, a lost cluster) skips those units. Every key ends up
  exactly once. A folder that changed between the runs would be cut differently: score it to a new DIR.
- Workers read the inputs themselves: on a cluster, every node must see them at the same paths.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import List, Optional

import typer

from . import EXIT_INTERRUPTED, EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, fail_as, say
from ..errors import one_line
from ..pipeline import DEFAULT_FILE_TIMEOUT

app = typer.Typer(rich_markup_mode=None, context_settings={"help_option_names": ["--help", "-h"]})

LOCK_NAME = ".ccscore-ray.lock"


def fail(message: str, code: int = EXIT_USAGE) -> None:
    fail_as("ccscore ray", message, code)


def plan_units(inputs: list[str], files_per_shard: int, exclude: list[str]) -> list[dict]:
    """The units of work, in input order: {"name", "source", "files": None or [(key, real path)...]}."""
    from ..inputs import is_shard_name, iter_inputs

    units: list[dict] = []
    for path in inputs:
        if os.path.isdir(path):
            base = os.path.basename(os.path.realpath(path)) or "root"
            files = [(item.path, item.source) for item in iter_inputs([path], exclude_dirs=exclude)]
            for k in range(0, max(len(files), 1), files_per_shard):
                units.append({"name": f"{base}-{k // files_per_shard:05d}", "source": path,
                              "files": files[k:k + files_per_shard]})
        elif is_shard_name(path):
            units.append({"name": os.path.basename(path), "source": path, "files": None})
        else:
            units.append({"name": os.path.basename(path), "source": path, "files": [(path, path)]})
    return units


def lock_output(folder: str):
    """Holds DIR's lock for this process's life: two runs into one DIR would race on its units."""
    try:
        import fcntl
    except ImportError:
        return None
    fd = os.open(os.path.join(folder, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        fail(f"--output {folder} is being written by another ccscore ray run; wait for it to end")
    return fd


def foreign_output(path: str, labels) -> Optional[str]:
    """Why a complete unit's file cannot stand for this run's records (None: it can)."""
    import json

    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception as exc:
        return f"{path} cannot be read as Parquet ({one_line(exc)}): remove it, or choose another --output"
    if json.loads(meta.get(b"labels", b"null")) != list(labels):
        return f"{path} holds records of another model (labels {meta.get(b'labels', b'none').decode()}): " \
               f"choose another --output"
    return None


@app.command()
def ray(
    inputs: List[Path] = typer.Argument(..., help="Folders, tar shards (.tar) and Parquet files (.parquet).",
                                        show_default=False),
    output: Path = typer.Option(..., "--output", "-o", metavar="DIR",
                                help="Folder for the records: one Parquet file per input shard."),
    address: Optional[str] = typer.Option(None, "--address", help="Join this Ray cluster ('auto': the one "
                                          "started here with 'ray start --head'); default: start a local one."),
    actors: Optional[int] = typer.Option(None, "--actors", min=1, help="Scoring actors, each with one "
                                         "onnxruntime session and its decoding processes (default: one per node)."),
    num_gpus: float = typer.Option(0.0, "--num-gpus", min=0.0, help="GPUs per actor (> 0: the session runs "
                                   "on CUDA)."),
    decode_workers: Optional[int] = typer.Option(None, "--decode-workers", min=1, help="Worker processes "
                                                 "per actor: decode, and on CPU score (default: the cores of its node)."),
    files_per_shard: int = typer.Option(1000, "--files-per-shard", min=1, help="Files of a folder per unit."),
    image_column: Optional[str] = typer.Option(None, "--image-column", metavar="COL",
                                               help="Parquet inputs: the column of encoded image bytes."),
    key_column: Optional[str] = typer.Option(None, "--key-column", metavar="COL",
                                             help="Parquet inputs: key records FILE/VALUE of this column."),
    model: Optional[Path] = typer.Option(None, "--model", help="A ccscore ONNX model (default: the bundled one)."),
    threshold: Optional[float] = typer.Option(None, "--threshold", min=0.0, max=1.0),
    max_pixels: Optional[int] = typer.Option(None, "--max-pixels", min=1),
    file_timeout: float = typer.Option(DEFAULT_FILE_TIMEOUT, "--file-timeout", metavar="SECONDS", min=0),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Rows handed to an actor at a time."),
) -> None:
    """Scores folders, tar shards and Parquet files with Ray Data; one Parquet file of records per input
    shard in DIR. A run started again skips the shards whose records are complete.

    Exit status: 0 all scored, 1 some images failed (or the Ray job failed), 2 usage error (no Ray: pip install 'ccscore[ray]'),
    130 interrupted (start it again: complete shards are skipped).
    """
    from ..errors import CCScoreError, OnnxRuntimeMissing
    from ..outputs import PARQUET_TEMP_INFIX, write_parquet_atomically
    from ..ray import IMAGE_COLUMN, KEY_COLUMN, Scorer, import_ray, unit_rows
    from ..scorer import Scorer as SessionScorer

    try:
        ray_module = import_ray()
    except ImportError as exc:
        fail(one_line(exc))
    paths = [os.fspath(p) for p in inputs]
    out = os.fspath(output)
    if os.path.exists(out) and not os.path.isdir(out):
        fail(f"--output {out} exists and is not a folder")
    try:  # the model is checked here, before any cluster starts; its labels make empty units' files
        labels = SessionScorer(model, device="cpu", max_pixels=max_pixels).labels
    except (OnnxRuntimeMissing, CCScoreError, ValueError) as exc:
        fail(one_line(exc))
    units = plan_units(paths, files_per_shard, [out])
    seen: dict[str, str] = {}
    for unit in units:
        if unit["name"] in seen and seen[unit["name"]] != unit["source"]:
            fail(f"{seen[unit['name']]} and {unit['source']} would both write {unit['name']}.parquet: "
                 f"rename one, or score them to different --output folders")
        seen[unit["name"]] = unit["source"]
    os.makedirs(out, exist_ok=True)
    lock = lock_output(out)  # noqa: F841  (held until the process ends)
    for name in os.listdir(out):  # what a killed run was writing: never complete, never read
        if name.startswith(".") and PARQUET_TEMP_INFIX in name:
            os.unlink(os.path.join(out, name))
    target = {u["name"]: os.path.join(out, u["name"] + ".parquet") for u in units}
    todo = [u for u in units if not os.path.exists(target[u["name"]])]
    for name in {u["name"] for u in units} - {u["name"] for u in todo}:
        if problem := foreign_output(target[name], labels):
            fail(problem)
    start = time.monotonic()
    counts = {"scored": 0, "failed": 0, "flagged": 0}

    def write_unit(name: str, tables: list) -> None:
        write_parquet_atomically(target[name], [t.drop_columns(["unit"]) for t in tables], labels)
        for t in tables:
            no_error = t.column("error").null_count
            counts["scored"] += no_error
            counts["failed"] += t.num_rows - no_error
            counts["flagged"] += sum(1 for v in t.column("label").to_pylist() if v not in (None, "clean"))

    interrupted = False
    failure = None
    if todo:
        import signal

        signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C from here: shut the cluster down
        import logging

        logging.getLogger("ray").setLevel(logging.ERROR)  # Ray's notes are not the user's business
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        try:
            if address:
                ray_module.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
            else:
                ray_module.init(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
            data = ray_module.data
            context = data.DataContext.get_current()
            context.execution_options.preserve_order = True  # a unit is complete when the next one starts
            context.enable_progress_bars = False
            context.print_on_execution_start = False
            n_actors = actors or sum(1 for node in ray_module.nodes() if node.get("Alive"))
            dataset = data.from_items(todo, override_num_blocks=len(todo)).flat_map(
                unit_rows, fn_kwargs={"image_column": image_column, "key_column": key_column}, num_cpus=0.5)
            scored = dataset.map_batches(
                Scorer, batch_size=batch_size, batch_format="pyarrow", compute=data.ActorPoolStrategy(size=n_actors),
                num_cpus=1,
                num_gpus=num_gpus or None,
                fn_constructor_kwargs={"model": None if model is None else os.path.abspath(model),
                                       "device": "cuda" if num_gpus else "cpu", "key_column": KEY_COLUMN,
                                       "image_column": IMAGE_COLUMN, "decode_workers": decode_workers,
                                       "file_timeout": file_timeout or None, "threshold": threshold,
                                       "max_pixels": max_pixels})
            order = [u["name"] for u in todo]
            position = 0  # units before this one are written
            tables: list = []
            for batch in scored.iter_batches(batch_size=None, batch_format="pyarrow"):
                for name in dict.fromkeys(batch.column("unit").to_pylist()):
                    rows = batch.filter(batch.column("unit").to_numpy(zero_copy_only=False) == name)
                    while order[position] != name:  # the units before it are complete (empty ones too)
                        write_unit(order[position], tables)
                        tables, position = [], position + 1
                    tables.append(rows)
            for name in order[position:]:
                write_unit(name, tables)
                tables = []
        except KeyboardInterrupt:
            interrupted = True
        except Exception as exc:  # the cluster failed (lost, out of memory...): what was written stands
            failure = f"the Ray job failed ({type(exc).__name__}: {one_line(exc)[:300]}); run it again: " \
                      f"complete shards are skipped"
        finally:
            ray_module.shutdown()
    elapsed = time.monotonic() - start
    n = counts["scored"] + counts["failed"]
    done_before = len(units) - len(todo)
    line = (f"{counts['scored']} scored, {counts['failed']} failed, {counts['flagged']} flagged; "
            f"{len(todo) if not interrupted else 'some'} of {len(units)} shards written to {out}"
            + (f", {done_before} were complete already" if done_before else "") + f" in {elapsed:.1f}s")
    if n and elapsed >= 1:
        line += f" ({n / elapsed:.1f} images/s)"
    say(f"ccscore ray: {'interrupted: ' if interrupted else ''}{line}")
    if interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if failure:
        fail(failure, EXIT_SOME_FAILED)
    raise typer.Exit(EXIT_SOME_FAILED if counts["failed"] else EXIT_OK)
