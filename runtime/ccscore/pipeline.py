"""Streaming folder runs: decode, tile and (on CPU) score in worker processes, keep input order.

    inputs --> [bounded window of files in flight in worker processes] --> results or tiles, in input order
           --> batches of ~batch_size tiles --> records, one write per batch

- On CPU each worker scores its own images with its own one-thread session (`ScorerSettings`: the main
  process's model and settings), so a core decodes and scores an image in turn instead of three processes
  (two decoders and the session) taking turns on two cores; workers send back results. On an accelerator
  the one session lives in the main process and runs whole batches: workers import only Pillow, numpy and
  ccscore's decoding/tiling code, and send back tiles (<= max_tiles x T x T x 3 bytes per image; an image
  that looks upscaled adds those of its halvings, up to 2 x max_tiles + 8 more: `tiling.halved_tiles`, and of
  the sizes it may have been upscaled from by another factor, up to 6 x 4 more: `tiling.unscaled_tiles`), never
  decoded images.
- At most `window` files are in flight, so memory stays flat whatever the number of inputs; the
  window is larger than a batch, so workers keep decoding while the session runs.
- Each worker holds one file at a time, so the main process always knows which file a worker is on: a worker
  that dies (a decoder crash, the OOM killer) costs that one file an error record, and a worker past the
  per-file time limit (decoding and scoring) is killed and its file recorded as too slow; either way a new
  worker takes its place. A worker builds its session before it counts as ready, so no file's limit pays for it
  (building has a limit of its own, as long).
- The CLI starts its workers before the session exists (`start_workers`), with a plain fork on Linux; they get
  their first files once it exists (the tiling is the model's). Where they will likely score, each builds its
  session meanwhile, beside the main process's. Workers started later (replacements, or pools started by library
  callers) use `forkserver` on Linux (onnxruntime's thread pools make plain fork unsafe once a session
  exists) and `spawn` elsewhere.
"""

from __future__ import annotations

import atexit
import math
import multiprocessing
import os
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Optional

import numpy as np

from .blas import limit_blas_threads
from .inputs import InputItem

DEFAULT_FILE_TIMEOUT = 60.0  # seconds one file may take to decode, tile and (on CPU) score in a worker

# ---------------------------------------------------------------- decoding (runs in the workers)


@dataclass
class TileSpec:
    strategy: str
    tile_size: int
    params: dict
    max_pixels: Optional[int]
    halve_upscaled: bool = False  # also tile the image halved where it looks upscaled (tiling.halved_tiles)


def source_name(source) -> str:
    """A decode source's name in messages: the path, or an `EncodedImage`'s record key."""
    return getattr(source, "name", source)


class DecodeOutcome(NamedTuple):
    """What a worker sends back for an image it decoded (and tiled, and maybe scored): picklable, small (tiles, and a
    small image's pixels)."""

    pixels: Optional[np.ndarray]  # [N, T, T, 3] uint8 tiles; None where the worker scored them
    boxes: list  # each tile's (left, top, right, bottom) in the image (of the tiles cut, where scored)
    size: tuple[int, int]  # (width, height)
    container: Optional[dict]  # header facts (ccscore.container)
    halved: Any  # the image halved (and halved again), tiled (tiling.Tiles), where it looks upscaled; or None
    unscaled: tuple  # the image resampled back to sizes it may have been upscaled from, tiled (Tiles.unscaled)
    scored: Any = None  # the ScoreResult or ScoreFailure of a worker that scored it
    whole: Optional[np.ndarray] = None  # a small image's pixels (Tiles.whole); None where none or the worker scored it


def decode_one(path, spec: TileSpec, keep_tiles: bool = False):
    """path (or an `EncodedImage`) -> a `DecodeOutcome` or an error string; never raises. With `keep_tiles`
    (scored in this process): (the `Tiles`, (width, height), header facts), its tiles cut only as scoring reads them
    (`tiling.CutOnRead`)."""
    from .container import read_container
    from .errors import ImageError, one_line
    from .images import load_image
    from .tiling import make_tiles

    try:
        decoded = load_image(path, spec.max_pixels)
        tiles = make_tiles(decoded, spec.strategy, spec.tile_size, spec.params, spec.halve_upscaled,
                           cut_on_read=keep_tiles)
        size = decoded.size
        del decoded  # tiles still to cut hold it
        if keep_tiles:
            return tiles, size, read_container(path)
        return DecodeOutcome(np.ascontiguousarray(tiles.pixels), [tuple(int(v) for v in b) for b in tiles.boxes],
                             size, read_container(path), tiles.halved, tiles.unscaled, whole=tiles.whole)
    except ImageError as exc:
        return one_line(exc, source_name(path))
    except MemoryError:
        return f"{source_name(path)}: out of memory while decoding"
    except Exception as exc:  # a bug or an exotic decoder failure: still one record, one line
        name = source_name(path)
        return f"{name}: cannot process image ({type(exc).__name__}: {one_line(exc, name)})"


MAX_WARNINGS = 10  # per record: a hostile file can warn thousands of times


def score_decoded(decoded: tuple, path, scorer) -> DecodeOutcome | str:
    """`decode_one`'s tuple with `keep_tiles` -> its `DecodeOutcome`, scored by `scorer` in this process (no pixels,
    the boxes of the tiles cut, the ScoreResult or ScoreFailure); an error string where scoring itself fails (as
    decode_one's errors read)."""
    from .errors import one_line

    tiles, size, container = decoded
    try:
        result = scorer.score_together([(source_name(path), tiles, size)])[0]
        boxes = [tuple(int(v) for v in b) for b in tiles.cut_boxes()]  # batches count them, nothing more
    except MemoryError:
        return f"{source_name(path)}: out of memory while scoring"
    except Exception as exc:  # a bug: still one record, one line
        name = source_name(path)
        return f"{name}: cannot score image ({type(exc).__name__}: {one_line(exc, name)})"
    return DecodeOutcome(None, boxes, size, container, None, (), result)


def decode_with_warnings(path, spec: TileSpec, scorer=None) -> tuple:
    """(`decode_one`'s result, scored by `scorer` when given (`score_decoded`), the warnings decoding raised):
    library warnings (Pillow's corrupt EXIF and the like) belong to the image's record, not to the terminal,
    where workers would interleave them."""
    import warnings

    from .errors import one_line

    # The filters stay as set (-W, PYTHONWARNINGS; by default ResourceWarning and the like are ignored); entering
    # catch_warnings resets "once per location", so every image reports its own.
    with warnings.catch_warnings(record=True) as caught:
        out = decode_one(path, spec, keep_tiles=scorer is not None)
    texts = dict.fromkeys(f"{w.category.__name__}: {one_line(w.message)}" for w in caught)
    # Scoring's warnings are shown, not recorded, as the main process's session shows them: a record does not
    # depend on which process scored it.
    if scorer is not None and not isinstance(out, str):
        out = score_decoded(out, path, scorer)
    return out, list(texts)[:MAX_WARNINGS]


def _watch_parent(parent: int, interval: float = 0.5) -> None:
    """Exits this worker once its parent is gone (killed with SIGKILL, it cannot tell us). The parent is the
    main process, or the forkserver, which exits with it. A dead parent's child is adopted at once, even while
    the parent lingers unreaped as a zombie (which os.kill(pid, 0) would still find): so watch getppid()."""
    while True:
        time.sleep(interval)
        if os.getppid() != parent:
            os._exit(0)


def _worker_init(parent: Optional[int] = None) -> None:
    """`parent`: the pid this worker's parent must have (a plain fork's creator), else whatever it has now."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle, not a traceback here
    # A forked worker's parent is its creator, whose pid it is told: read here, a creator killed before this line
    # would leave its adopter's pid watched, and the worker (holding both ends of its pipe) waiting forever.
    threading.Thread(target=_watch_parent, args=(parent or os.getppid(),), daemon=True).start()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    limit_blas_threads(1)  # forked with numpy loaded: the variable above comes too late for its BLAS


@dataclass(frozen=True)
class UseScorer:
    """To a worker: score from now on with a Scorer built from `settings` (None: decode and tile only)."""

    settings: Any  # scorer.ScorerSettings or None


def _spare_scorer(model: Optional[str]):
    """`ScorerSettings.blank(model)`, built ahead of the settings it will score with; None when it cannot be."""
    from .scorer import ScorerSettings

    try:
        return ScorerSettings.blank(model)
    except Exception:  # no such model, no memory: the scorer is built (or its failure handled) when told
        return None


def _worker_main(conn, preload: Optional[str] = None, parent: Optional[int] = None) -> None:
    """A worker process: None (ready) out first, then (seq, path, spec) in and (seq, decode_with_warnings'
    result) out, one file at a time, until EOF. A `UseScorer` in is answered None once the scorer is built.
    `preload`: a model file to build a spare CPU scorer for right after start-up, while the main process builds
    its own session; the first `UseScorer` uses it if its settings name that file, else drops it. `parent`: see
    `_worker_init`."""
    _worker_init(parent)
    from . import images, tiling  # noqa: F401  (imported now, not on the first image's time)

    conn.send(None)
    spare = _spare_scorer(preload) if preload else None
    scorer = None
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        if isinstance(task, UseScorer):
            try:
                scorer = task.settings.build(spare) if task.settings is not None else None
            except Exception:  # the model file replaced or deleted since, no memory: decode only, main scores
                scorer = None
            spare = None
            conn.send(None)
            continue
        seq, path, spec = task
        out = decode_with_warnings(path, spec, scorer)
        try:
            conn.send((seq, out))
        except OSError:
            return


def mp_context():
    methods = multiprocessing.get_all_start_methods()
    if sys.platform.startswith("linux") and "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        # Workers fork from a server that has imported the decoding code once, instead of each importing it.
        ctx.set_forkserver_preload(["ccscore.images", "ccscore.tiling"])
        return ctx
    return multiprocessing.get_context("spawn")


def _fork_is_safe() -> bool:
    # Before onnxruntime is imported (so before any session and its thread pools) and while this process runs
    # no other Python thread, a plain fork copies nothing that could deadlock in the child.
    return (sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()
            and "onnxruntime" not in sys.modules and threading.active_count() == 1)


# ---------------------------------------------------------------- the pool of decode processes


def _died(path: str, exitcode: Optional[int]) -> str:
    how = f"killed by signal {-exitcode}" if exitcode and exitcode < 0 else f"exit status {exitcode}"
    return f"{path}: decoder died on this file ({how}: a crash, or the system ran out of memory)"


def _too_slow(path: str, limit: float) -> str:
    return f"{path}: too slow: its worker took over {limit:g} s on it (--file-timeout)"


# Workers in a row that may die before they are ready before the pool gives up (none can be started).
MAX_STARTUP_DEATHS = 5


# A started worker's `scoring` while it builds a spare scorer (`_worker_main`'s preload), and the pool's until
# `score_with`: unequal to any settings and to None, so the first `UseScorer` reaches it, if only to drop the spare.
PRELOADING = "building a spare scorer"


@dataclass
class _Worker:
    process: Any
    conn: Any  # this process's end of the worker's pipe
    ready: bool = False  # started up (and scorer built): its first file's time limit does not pay for the start
    started: bool = False  # it said ready once: its death, whenever, is no sign that workers cannot be started
    scoring: Any = None  # the ScorerSettings it was last told to use (PRELOADING: none yet, building a spare)
    task: Optional[tuple[int, str]] = None  # (seq, path) of the file in flight
    deadline: float = math.inf  # of the file in flight, or of building its scorer


class DecodePool:
    """Decode processes fed one file at a time by a dispatching thread, which also replaces any that die.
    After `score_with(settings)` they score too (each its own session), and so do their replacements, until one
    dies building its session.

    `submit` queues a file and returns its ticket; `result` waits for that file's outcome: decode_with_warnings'
    result, or an error string when the worker died on it or ran past `file_timeout` seconds (then it is killed).
    Each file gets exactly one outcome whatever happens to the workers. `close` kills the workers.
    `preload`: a model file the first workers build a spare scorer for as they start (see `_worker_main`).
    """

    def __init__(self, workers: int, file_timeout: Optional[float] = None, ctx=None, preload: Optional[str] = None):
        if workers < 1:
            raise ValueError("a DecodePool needs at least one worker")
        self.file_timeout = file_timeout
        self._replacement_ctx = None  # mp_context(), made when a first replacement is needed
        first_ctx = ctx or mp_context()
        self._workers = [self._start(first_ctx, preload) for _ in range(workers)]
        self._cv = threading.Condition()
        self._todo: deque = deque()  # (seq, path, spec) not yet given to a worker
        # ScorerSettings the workers score with (None: decode and tile only; PRELOADING: not told yet, so workers
        # keep the spare scorers they build until `score_with` says what to use)
        self._scoring = PRELOADING if preload else None
        self._unbuildable = None  # ScorerSettings a worker died building a scorer from: not tried again
        self._results: dict = {}  # seq -> outcome, until taken
        self._next = 0
        self._closed = False
        self._failure: Optional[BaseException] = None
        self._startup_deaths = 0  # workers in a row that died before they were ready
        self._wake_r, self._wake_w = multiprocessing.Pipe(duplex=False)
        self._thread = threading.Thread(target=self._dispatch, name="ccscore-decode", daemon=True)
        self._thread.start()  # after the forks above: a forked child must not inherit a running thread
        atexit.register(self.close)  # before multiprocessing's own exit handler stops the workers under it

    @staticmethod
    def _start(ctx, preload: Optional[str] = None) -> _Worker:
        ours, theirs = ctx.Pipe()
        # Forked directly, its parent is this process; from a forkserver, the server (see `_watch_parent`).
        creator = os.getpid() if ctx.get_start_method() == "fork" else None
        process = ctx.Process(target=_worker_main, args=(theirs, preload, creator), daemon=True)
        process.start()
        theirs.close()  # only the worker holds its end now, so its death reads as EOF here
        return _Worker(process, ours, scoring=PRELOADING if preload else None)

    def submit(self, path, spec: TileSpec) -> int:
        """`path`: a file's path or an `EncodedImage`."""
        with self._cv:
            if self._closed:
                raise RuntimeError("the decode pool is closed")
            seq = self._next
            self._next += 1
            self._todo.append((seq, path, spec))
        self._wake_w.send_bytes(b"")
        return seq

    def score_with(self, settings) -> None:
        """From the next file on, workers score with a Scorer built from `settings` (a `ScorerSettings`), or only
        decode and tile (None). Each builds its scorer before it takes another file. Settings a worker died
        building a scorer from stay off: each try would cost every worker, run after run of a kept pool."""
        with self._cv:
            self._scoring = None if settings == self._unbuildable else settings
        self._wake_w.send_bytes(b"")

    def ready(self, seq: int) -> bool:
        """Whether `result(seq)` would return at once."""
        with self._cv:
            return seq in self._results

    def result(self, seq: int):
        with self._cv:
            while seq not in self._results:
                if self._failure is not None:
                    from .errors import DecodePoolError, one_line

                    raise DecodePoolError(f"the decode workers failed: {one_line(self._failure)}") from self._failure
                # Bounded: Ctrl-C delivered to another thread must still reach this one within a moment.
                self._cv.wait(0.2)
            return self._results.pop(seq)

    def close(self) -> None:
        # No lock taken here: a Ctrl-C that struck while this thread held it may have left it held.
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        self._wake_w.send_bytes(b"")
        self._thread.join(timeout=10)  # it only ever waits on its pipes, and is woken above
        for w in self._workers:
            w.process.kill()  # a worker may be stuck in a decoder: nothing it holds needs a clean exit
        for w in self._workers:
            w.process.join()
            w.conn.close()
        self._wake_r.close()
        self._wake_w.close()

    # -- the dispatching thread

    def _dispatch(self) -> None:
        try:
            while not self._closed:
                with self._cv:
                    scoring = self._scoring
                    idle = [w for w in self._workers if w.ready and w.task is None]
                    for w in [w for w in idle if w.scoring != scoring and scoring is not PRELOADING]:
                        idle.remove(w)
                        self._prepare(w, scoring)
                    tasks = [self._todo.popleft() for _ in range(min(len(idle), len(self._todo)))]
                for w, (seq, path, spec) in zip(idle, tasks):
                    self._give(w, seq, path, spec)
                talking = [w.conn for w in self._workers if w.task is not None or not w.ready]
                deadline = min(w.deadline for w in self._workers)
                timeout = None if deadline == math.inf else max(0.0, deadline - time.monotonic())
                ready = set(wait([self._wake_r] + talking + [w.process.sentinel for w in self._workers], timeout))
                if self._wake_r in ready:
                    while self._wake_r.poll():
                        self._wake_r.recv_bytes()
                for i, w in enumerate(self._workers):
                    exited = w.process.sentinel in ready
                    readable = w.conn in ready or (exited and w.conn.poll())
                    if (readable and not self._receive(w)) or exited:  # EOF on its pipe: it died too
                        self._replace(i, too_slow=False)
                now = time.monotonic()
                for i, w in enumerate(self._workers):
                    if now >= w.deadline:  # on a file, or building its scorer
                        self._replace(i, too_slow=True)
        except BaseException as exc:  # a bug here must not leave the main thread waiting forever
            with self._cv:
                self._failure = exc
                self._cv.notify_all()

    def _deadline(self) -> float:
        """When a worker given something now (a file, or a scorer to build) is past the per-file time limit."""
        return time.monotonic() + self.file_timeout if self.file_timeout else math.inf

    def _prepare(self, w: _Worker, scoring) -> None:
        """Tells an idle worker what to score with; it is not ready again until it says so, within the per-file
        time limit (past it, it is replaced as if it had died building its scorer)."""
        w.ready, w.scoring = False, scoring
        w.deadline = self._deadline()
        try:
            w.conn.send(UseScorer(scoring))
        except OSError:
            pass  # dead: its sentinel says so next

    def _give(self, w: _Worker, seq: int, path, spec: TileSpec) -> None:
        w.task = (seq, source_name(path))
        w.deadline = self._deadline()
        try:
            w.conn.send((seq, path, spec))
        except OSError:
            pass  # the worker is dead: its sentinel says so next, and the file gets its record then

    def _receive(self, w: _Worker) -> bool:
        """Takes the worker's message; False when its pipe is closed or broken off mid-message (it died)."""
        try:
            message = w.conn.recv()
        except (EOFError, OSError):
            return False
        except Exception as exc:  # a result that cannot be read back is that file's error, not the run's
            if w.task is None:
                return False
            message = (w.task[0], f"{w.task[1]}: cannot read the decoder's result ({type(exc).__name__})")
        if message is None:
            w.ready, w.started, w.deadline = True, True, math.inf
            return True
        seq, out = message
        w.task, w.deadline = None, math.inf
        self._put(seq, out)
        return True

    def _put(self, seq: int, out) -> None:
        with self._cv:
            self._results[seq] = out
            self._cv.notify_all()

    def _replace(self, i: int, too_slow: bool) -> None:
        """Kills worker i (when not dead already) and starts another; its file in flight, if any, gets its
        error record: too slow, or the decoder died on it. One that died building its scorer ends the scoring in
        the workers with those settings. Workers that keep dying before they are ready (no processes or memory
        left to start one) end the pool rather than be replaced forever."""
        w = self._workers[i]
        w.process.kill()
        w.process.join()
        w.conn.close()
        died_building = not w.ready and w.scoring not in (None, PRELOADING)  # (`_prepare`)
        if died_building:
            # This pool's workers only decode from now on and the main process scores, rather than each worker
            # dying the same way. It had started: no sign that workers cannot be started, so no startup death.
            with self._cv:
                self._unbuildable = w.scoring
                if self._scoring == w.scoring:
                    self._scoring = None
        # One that said ready once had started, whatever it died doing since (a file, building a scorer, or
        # still building a spare one it was told to drop).
        self._startup_deaths = 0 if w.started else self._startup_deaths + 1
        if self._startup_deaths >= MAX_STARTUP_DEATHS:
            from .errors import DecodePoolError

            raise DecodePoolError(f"{self._startup_deaths} decode workers in a row died while starting "
                                  f"(last exit status {w.process.exitcode}): out of memory or processes?")
        if w.task is not None:
            seq, path = w.task
            self._put(seq, _too_slow(path, self.file_timeout) if too_slow else _died(path, w.process.exitcode))
        if self._replacement_ctx is None:
            self._replacement_ctx = mp_context()
        self._workers[i] = self._start(self._replacement_ctx)


def start_workers(workers: int, file_timeout: Optional[float] = DEFAULT_FILE_TIMEOUT, model=None,
                  device=None, intra_op_threads: Optional[int] = None) -> Optional[DecodePool]:
    """Starts `workers` decode processes now, before the session exists (they start up while it is created;
    files reach them in `run_pipeline`, which closes the pool). None for 0. Given the session's `device` (and
    `model`, None for the bundled one, and `intra_op_threads` as the session gets them), workers that will
    likely score (`likely_scored_in_workers`) each build their own session while the main process builds its,
    instead of after.

    Started this early they can be forked from this process (~10 ms) rather than from a fresh forkserver
    (~250 ms); replacements started later use `mp_context()`.
    """
    if workers <= 0:
        return None
    if _fork_is_safe():
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:  # None: started without that descriptor (cron, daemons)
                stream.flush()  # a child flushes inherited buffers when it exits: nothing may be pending
        ctx = multiprocessing.get_context("fork")
    else:
        ctx = mp_context()
    preload = None
    if device is not None and likely_scored_in_workers(workers, device, intra_op_threads):
        from .errors import ModelError
        from .model_info import default_model_path

        try:
            preload = os.fspath(model) if model is not None else str(default_model_path())
        except ModelError:
            pass  # the main process's Scorer says so
    return DecodePool(workers, file_timeout, ctx, preload)


def likely_scored_in_workers(workers: int, device, intra_op_threads: Optional[int] = None) -> bool:
    """Whether `run_pipeline` will likely have `workers` score, told before any session exists (onnxruntime is
    not imported yet, so that workers can still be forked): `device` surely CPU, and more workers than the
    threads of a session made with `intra_op_threads`. A wrong guess costs each worker one spare session, built
    before it answers what it is told first, and dropped then."""
    from .providers import session_threads, surely_cpu

    return workers > session_threads(intra_op_threads) and surely_cpu(device)


# ---------------------------------------------------------------- ordered, bounded decoding


@dataclass
class Decoded:
    item: InputItem
    pixels: Optional[np.ndarray] = None
    boxes: Optional[list] = None
    size: Optional[tuple[int, int]] = None
    container: Optional[dict] = None  # header facts (ccscore.container)
    halved: Any = None  # the image halved (and halved again), tiled (tiling.Tiles), where it looks upscaled
    unscaled: tuple = ()  # the image resampled back to sizes it may have been upscaled from, tiled (Tiles.unscaled)
    whole: Optional[np.ndarray] = None  # a small image's pixels (Tiles.whole)
    error: Optional[str] = None
    warnings: list[str] = field(default_factory=list)
    scored: Any = None  # the ScoreResult or ScoreFailure of a worker that scored it (then pixels is None)
    # Every input is in the workers' hands and the next image is still decoding: a batch waiting for more tiles
    # would only wait (see `batches`).
    drained: bool = False


def _as_decoded(item: InputItem, result, drained: bool = False) -> Decoded:
    """From decode_with_warnings' (outcome, warnings), or the pool's error string (a worker died or timed out)."""
    out, warned = (result, []) if isinstance(result, str) else result
    if isinstance(out, str):
        return Decoded(item, error=out, warnings=warned, drained=drained)
    return Decoded(item, out.pixels, out.boxes, out.size, out.container, out.halved, out.unscaled, out.whole,
                   warnings=warned, scored=out.scored, drained=drained)


def decode_stream(items: Iterable[InputItem], spec: TileSpec, workers: int, window: Optional[int] = None,
                  pool: Optional[DecodePool] = None, file_timeout: Optional[float] = DEFAULT_FILE_TIMEOUT,
                  keep_pool: bool = False, scoring=None) -> Iterator[Decoded]:
    """Decoded images in input order. workers=0 decodes in this process, where no time limit can stop a
    decoder. `pool`: workers already started (see `start_workers`, which sets their time limit); closed
    here like the pools made here, unless `keep_pool` (a caller that decodes stream after stream).
    `scoring` (a `ScorerSettings`): the workers also score each image (`Decoded.scored`)."""
    if workers <= 0 and pool is None:
        for item in items:
            yield _as_decoded(item, decode_with_warnings(item.decode_source, spec))
        return

    pool = pool or DecodePool(workers, file_timeout)
    pool.score_with(scoring)
    window = window or max(8, len(pool._workers) * 8)
    pending: deque = deque()  # (item, ticket), in input order
    items = iter(items)
    handed_out = False  # every input submitted
    try:
        while True:
            while len(pending) < window and not handed_out:
                item = next(items, None)
                if item is None:
                    handed_out = True
                    break
                pending.append((item, pool.submit(item.decode_source, spec)))
            if not pending:
                return
            item, ticket = pending.popleft()
            result = pool.result(ticket)
            yield _as_decoded(item, result, drained=handed_out and not (pending and pool.ready(pending[0][1])))
    finally:
        if not keep_pool:
            pool.close()


# ---------------------------------------------------------------- batching and scoring


def batches(decoded: Iterable[Decoded], batch_tiles: int) -> Iterator[list[Decoded]]:
    """Groups decoded images (errors included, in order) into batches of about `batch_tiles` tiles; cut short
    where the stream is `drained`, so that the last images are scored while the workers finish the others rather
    than after them (a result never depends on which images share a batch)."""
    batch: list[Decoded] = []
    tiles = 0
    for d in decoded:
        batch.append(d)
        if d.boxes is not None:
            tiles += len(d.boxes)
        if tiles >= batch_tiles or len(batch) >= batch_tiles or d.drained:  # error-only runs must flush too
            yield batch
            batch, tiles = [], 0
    if batch:
        yield batch


def score_batch(scorer, batch: list[Decoded], with_tiles: bool = False,
                with_details: bool = False) -> list[tuple[Decoded, dict]]:
    """Records of the batch, in order: the images its workers scored as they were, the others scored here in
    one session run."""
    from dataclasses import replace

    from .errors import without_path
    from .tiling import Tiles

    to_score = [d for d in batch if d.pixels is not None]
    scored = {id(d): r for d, r in zip(to_score, scorer.score_together(
        [(d.item.path, Tiles(d.pixels, d.boxes, d.halved, unscaled=d.unscaled, whole=d.whole), d.size)
         for d in to_score]))}
    scored.update((id(d), replace(d.scored, path=d.item.path)) for d in batch if d.scored is not None)
    out = []
    for d in batch:
        result = scored.get(id(d))
        record = result.with_container(d.container).to_dict(with_tiles, with_details) if result is not None else {
            "path": d.item.path, "error": without_path(d.error or "unknown error", d.item.path)}
        if d.warnings:
            record["warnings"] = d.warnings
        out.append((d, record))
        d.pixels = d.halved = d.whole = None  # the batch's tiles (and a small image's pixels) can go now
        d.unscaled = ()
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
                 on_batch: Callable[[list[tuple[Decoded, dict]]], None], with_tiles: bool = False,
                 pool: Optional[DecodePool] = None, keep_pool: bool = False, with_details: bool = False,
                 score_in_workers: bool = True) -> None:
    """Decodes, scores and hands each batch's (decoded, record) pairs to `on_batch`, in input order.
    Decoding (and scoring) a file in a worker may take `scorer.file_timeout` seconds (a `pool` brings its own
    limit). `pool` is closed at the end unless `keep_pool`. With a session on CPU and more workers than its
    threads, the workers score (`score_in_workers`; results identical to scoring here); otherwise (an
    accelerator, one worker) this process does."""
    from .scorer import ScorerSettings

    spec = TileSpec(scorer.info.tiling, scorer.info.tile_size, dict(scorer.tiling_params), scorer.max_pixels,
                    scorer.halve_upscaled)
    # Workers scoring one image each beat this process's session only where they outnumber its threads: one
    # worker that decodes and scores in turn is slower than it decoding while the session scores.
    pool_size = len(pool._workers) if pool is not None else workers
    in_workers = score_in_workers and scorer.runs_on_cpu and pool_size > scorer.intra_op_threads
    scoring = ScorerSettings.of(scorer) if in_workers else None  # None: scored here
    # Enough images in flight to fill the next batch while the session runs the current one.
    per_image = max(1, int(spec.params.get("max_tiles", 8)))
    images_per_batch = max(1, -(-batch_tiles // per_image))
    window = max(workers * 8, 2 * images_per_batch, 8)
    stream = decode_stream(items, spec, workers, window=window, pool=pool, file_timeout=scorer.file_timeout,
                           keep_pool=keep_pool, scoring=scoring)
    try:
        for batch in batches(stream, batch_tiles):
            on_batch(score_batch(scorer, batch, with_tiles, with_details))
    finally:
        stream.close()
