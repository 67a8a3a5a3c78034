"""Streaming folder runs: decode and tile in worker processes, score in batches, keep input order.

    inputs --> [bounded window of decode tasks in worker processes] --> tiles, in input order
           --> batches of ~batch_size tiles --> one session run each --> records, one write per batch

- Workers import only Pillow, numpy and ccscore's decoding/tiling code, never onnxruntime: the one
  session lives in the main process. Workers send back tiles (<= max_tiles x T x T x 3 bytes per image),
  not decoded images.
- At most `window` tasks are in flight, so memory stays flat whatever the number of inputs; the
  window is larger than a batch, so workers keep decoding while the session runs.
- A worker that dies (a decoder crash, the OOM killer) costs a retry of the tasks in flight; a task
  that kills a worker twice becomes an error record.
- The CLI starts its workers before the session exists (`start_workers`), with a plain fork on Linux, so they
  decode while the session is created. Pools started later (after a worker crash, or by library callers)
  use `forkserver` on Linux (onnxruntime's thread pools make plain fork unsafe once a session exists) and
  `spawn` elsewhere.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Optional, Sequence

import numpy as np

from .inputs import InputItem

# ---------------------------------------------------------------- decoding (runs in the workers)


@dataclass
class TileSpec:
    strategy: str
    tile_size: int
    params: dict
    max_pixels: Optional[int]


def decode_one(path: str, spec: TileSpec):
    """path -> (pixels [N,T,T,3] uint8, boxes, (width, height)) or an error string; never raises."""
    from .errors import ImageError, one_line
    from .images import load_image
    from .tiling import make_tiles

    try:
        decoded = load_image(path, spec.max_pixels)
        tiles = make_tiles(decoded, spec.strategy, spec.tile_size, spec.params)
        size = decoded.size
        del decoded
        return np.ascontiguousarray(tiles.pixels), [tuple(int(v) for v in b) for b in tiles.boxes], size
    except ImageError as exc:
        return one_line(exc)
    except MemoryError:
        return f"{path}: out of memory while decoding"
    except Exception as exc:  # a bug or an exotic decoder failure: still one record, one line
        return f"{path}: cannot process image ({type(exc).__name__}: {one_line(exc)})"


MAX_WARNINGS = 10  # per record: a hostile file can warn thousands of times


def decode_with_warnings(path: str, spec: TileSpec) -> tuple:
    """(`decode_one`'s result, the warnings it raised): library warnings (Pillow's corrupt EXIF and the like)
    belong to the image's record, not to the terminal, where workers would interleave them."""
    import warnings

    from .errors import one_line

    # The filters stay as set (-W, PYTHONWARNINGS; by default ResourceWarning and the like are ignored); entering
    # catch_warnings resets "once per location", so every image reports its own.
    with warnings.catch_warnings(record=True) as caught:
        out = decode_one(path, spec)
    texts = dict.fromkeys(f"{w.category.__name__}: {one_line(w.message)}" for w in caught)
    return out, list(texts)[:MAX_WARNINGS]


def decode_chunk(paths: Sequence[str], spec: TileSpec) -> list:
    return [decode_with_warnings(p, spec) for p in paths]


def _watch_parent(pid: int, interval: float = 0.5) -> None:
    """Exits this worker once the main process is gone (killed with SIGKILL, it cannot tell us)."""
    while True:
        time.sleep(interval)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            os._exit(0)
        except OSError:
            pass  # exists, but not ours to signal


def _worker_init(parent_pid: Optional[int] = None) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle, not a traceback here
    if parent_pid is not None:
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def mp_context():
    methods = multiprocessing.get_all_start_methods()
    if sys.platform.startswith("linux") and "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        # Workers fork from a server that has imported the decoding code once, instead of each importing it.
        ctx.set_forkserver_preload(["ccscore.images", "ccscore.tiling"])
        return ctx
    return multiprocessing.get_context("spawn")


def _new_pool(workers: int, ctx) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                               initargs=(os.getpid(),))


def _ready() -> None:
    from . import images, tiling  # noqa: F401  (imported now, not on the first image)


def _fork_is_safe() -> bool:
    # Before onnxruntime is imported (so before any session and its thread pools) and while this process runs
    # no other Python thread, a plain fork copies nothing that could deadlock in the child.
    return (sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()
            and "onnxruntime" not in sys.modules and threading.active_count() == 1)


def start_workers(workers: int) -> Optional[ProcessPoolExecutor]:
    """Starts `workers` decode processes now, before the session exists, so that they decode while it is
    created. Hand the pool to `run_pipeline`, which shuts it down. None for 0.

    Started this early they can be forked from this process (~10 ms) rather than from a fresh forkserver
    (~250 ms); pools started later (after a worker crash) use `mp_context()`.
    """
    if workers <= 0:
        return None
    if _fork_is_safe():
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # a child flushes inherited buffers when it exits: nothing may be pending
        ctx = multiprocessing.get_context("fork")
    else:
        ctx = mp_context()
    pool = _new_pool(workers, ctx)
    for _ in range(workers):
        pool.submit(_ready)
    return pool


# ---------------------------------------------------------------- ordered, bounded decoding


@dataclass
class Decoded:
    item: InputItem
    pixels: Optional[np.ndarray] = None
    boxes: Optional[list] = None
    size: Optional[tuple[int, int]] = None
    error: Optional[str] = None
    warnings: list[str] = field(default_factory=list)


def _as_decoded(item: InputItem, result) -> Decoded:
    out, warned = result  # see decode_with_warnings
    if isinstance(out, str):
        return Decoded(item, error=out, warnings=warned)
    pixels, boxes, size = out
    return Decoded(item, pixels, boxes, size, warnings=warned)


def _chunks(items: Iterable[InputItem], size: int) -> Iterator[list[InputItem]]:
    chunk: list[InputItem] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def decode_stream(items: Iterable[InputItem], spec: TileSpec, workers: int, chunksize: int = 2,
                  window: Optional[int] = None, pool: Optional[ProcessPoolExecutor] = None) -> Iterator[Decoded]:
    """Decoded images in input order. workers=0 decodes in this process. `pool`: workers already started
    (see `start_workers`); shut down here like the pools made here."""
    if workers <= 0:
        for item in items:
            yield _as_decoded(item, decode_with_warnings(item.path, spec))
        return

    window = window or max(4, workers * 4)
    ctx = mp_context()
    pool = pool or _new_pool(workers, ctx)
    pending: deque = deque()  # (chunk, future)
    chunks = _chunks(items, chunksize)
    exhausted = False
    try:
        while True:
            while not exhausted and len(pending) < window:
                chunk = next(chunks, None)
                if chunk is None:
                    exhausted = True
                    break
                pending.append((chunk, pool.submit(decode_chunk, [i.path for i in chunk], spec)))
            if not pending:
                return
            chunk, future = pending[0]
            try:
                outs = future.result()
            except BrokenProcessPool:
                # A worker died and took every task in flight with it. Keep what had finished; decode the
                # rest again one image at a time, alone, so that a second crash names the culprit exactly.
                pool.shutdown(wait=False, cancel_futures=True)
                yield from _recover(pending, spec, ctx)
                pending.clear()
                pool = _new_pool(workers, ctx)
                continue
            pending.popleft()
            for item, out in zip(chunk, outs):
                yield _as_decoded(item, out)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _recover(pending: deque, spec: TileSpec, ctx) -> Iterator[Decoded]:
    """In input order: results of tasks that finished before a crash, then the others retried one by one."""
    solo = None
    try:
        for chunk, future in pending:
            if future.done() and not future.cancelled() and future.exception() is None:
                for item, out in zip(chunk, future.result()):
                    yield _as_decoded(item, out)
                continue
            for item in chunk:
                solo = solo or _new_pool(1, ctx)
                try:
                    (out,) = solo.submit(decode_chunk, [item.path], spec).result()
                except BrokenProcessPool:
                    solo.shutdown(wait=False, cancel_futures=True)
                    solo = None
                    yield Decoded(item, error=f"{item.path}: the decoder crashed on this file")
                    continue
                yield _as_decoded(item, out)
    finally:
        if solo is not None:
            solo.shutdown(wait=True)


# ---------------------------------------------------------------- batching and scoring


def batches(decoded: Iterable[Decoded], batch_tiles: int) -> Iterator[list[Decoded]]:
    """Groups decoded images (errors included, in order) into batches of about `batch_tiles` tiles."""
    batch: list[Decoded] = []
    tiles = 0
    for d in decoded:
        batch.append(d)
        if d.pixels is not None:
            tiles += len(d.pixels)
        if tiles >= batch_tiles or len(batch) >= batch_tiles:  # error-only runs must flush too
            yield batch
            batch, tiles = [], 0
    if batch:
        yield batch


def score_batch(scorer, batch: list[Decoded], with_tiles: bool = False) -> list[tuple[Decoded, dict]]:
    """One session run for the whole batch; returns (decoded, record) in order."""
    from .errors import without_path
    from .tiling import Tiles

    good = [d for d in batch if d.pixels is not None]
    scored = scorer.score_together([(d.item.path, Tiles(d.pixels, d.boxes), d.size) for d in good])
    records = {id(d): r.to_dict(with_tiles=with_tiles) for d, r in zip(good, scored)}
    out = []
    for d in batch:
        record = records[id(d)] if d.pixels is not None else {
            "path": d.item.path, "error": without_path(d.error or "unknown error", d.item.path)}
        if d.warnings:
            record["warnings"] = d.warnings
        out.append((d, record))
        d.pixels = None  # the batch's tiles can go now
    return out


# ---------------------------------------------------------------- progress


class Progress:
    """A one-line progress bar on a terminal: done, rate, ETA once the total is known. Silent otherwise."""

    def __init__(self, stream=None, enabled: Optional[bool] = None, min_interval: float = 0.2):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.start = time.monotonic()
        self.last = 0.0
        self.done = 0
        self.failed = 0
        self.total: Optional[int] = None  # every input, set by a counting thread when it finishes
        self.skipped = 0  # inputs a resumed run found already done
        self.min_interval = min_interval
        self._width = 0

    def update(self, done: int, failed: int, force: bool = False) -> None:
        self.done, self.failed = done, failed
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self.last < self.min_interval:
            return
        self.last = now
        elapsed = max(now - self.start, 1e-6)
        rate = done / elapsed
        parts = []
        finished = done + self.skipped
        if self.total:
            frac = min(1.0, finished / self.total)
            filled = int(frac * 24)
            parts.append(f"[{'#' * filled}{'.' * (24 - filled)}] {finished}/{self.total}")
        else:
            parts.append(f"{finished} images")
        parts.append(f"{rate:.1f} img/s")
        if failed:
            parts.append(f"{failed} failed")
        if self.total and rate > 0 and finished < self.total:
            parts.append(f"ETA {format_seconds((self.total - finished) / rate)}")
        line = "  ".join(parts)
        pad = max(0, self._width - len(line))
        self._width = len(line)
        self.stream.write("\r" + line + " " * pad)
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()


def format_seconds(s: float) -> str:
    s = int(round(s))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def run_pipeline(scorer, items: Iterable[InputItem], workers: int, batch_tiles: int,
                 on_batch: Callable[[list[tuple[Decoded, dict]]], None], chunksize: int = 2,
                 with_tiles: bool = False, pool: Optional[ProcessPoolExecutor] = None) -> None:
    """Decodes, scores and hands each batch's (decoded, record) pairs to `on_batch`, in input order."""
    spec = TileSpec(scorer.info.tiling, scorer.info.tile_size, dict(scorer.tiling_params), scorer.max_pixels)
    # Enough images in flight to fill the next batch while the session runs the current one.
    per_image = max(1, int(spec.params.get("max_tiles", 8)))
    images_per_batch = max(1, -(-batch_tiles // per_image))
    window = max(workers * 4, -(-2 * images_per_batch // chunksize), 4)
    stream = decode_stream(items, spec, workers, chunksize=chunksize, window=window, pool=pool)
    try:
        for batch in batches(stream, batch_tiles):
            on_batch(score_batch(scorer, batch, with_tiles))
    finally:
        stream.close()
