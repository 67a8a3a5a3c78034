"""`ccscore IMAGE|FOLDER...`: score images or whole datasets, write records, act on the decisions."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import List, Optional

import typer

from . import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, fail_as, say
from ..errors import CCScoreError, DecodePoolError, one_line
from ..model_info import MAX_TILES_RANGE
from ..outputs import shown_path
from ..pipeline import DEFAULT_FILE_TIMEOUT
from ..providers import DEVICES
from ..scorer import AGGREGATIONS
from ..selection import Selection
from . import exit_interrupted

# Plain help (no boxes): option names are never cut at 80 columns. Shell completion: --install-completion.
app = typer.Typer(rich_markup_mode=None, context_settings={"help_option_names": ["--help", "-h"]})

JOURNAL_SUFFIX = ".ccscore-journal"  # the actions' journal beside --output
# On CPU, 32 tiles (~13 images) per batch: the session runs in longer bursts between waits for decoding (8 cost
# ~8% more CPU on 139 illustrations) while a killed run re-scores at most that many images.
CPU_BATCH, GPU_BATCH = 32, 64
MIN_RATE_SECONDS = 1.0


def ranked(scores: dict) -> str:
    return ", ".join(f"{label} {p:.3f}" for label, p in sorted(scores.items(), key=lambda kv: -kv[1]))


def readable(record: dict) -> str:
    """One line per image; with --tiles, one more per tile scored: its box (left, top, right, bottom)."""
    exact = "" if record.get("quality_source") == "table" else "~"  # read from the JPEG's table, or estimated
    quality = f", quality {exact}{record['quality']:.0f}" if record.get("quality") is not None else ""
    quality += ", recompressed" if record.get("recompressed") else ""
    label = record["label"]
    # Said where the answer is not a measurement (nothing a codec could mark, too little to check a grid on), or
    # where it was found on the image halved (damage upscaled x2 or x4 since) or at a downscaled grid's period
    # (--details says which).
    evidence = {"none": ", no evidence", "weak": ", weak evidence",
                "halved": ", seen halved (upscaled after compression)",
                "downscaled": ", grid seen downscaled (resized after compression)",
                "upscaled": ", seen resampled back (upscaled after compression)",
                "chroma": ", chroma subsampled (resized after compression)"}.get(record.get("evidence"), "")
    lines = [f"{shown_path(record['path'])}: {label.upper() if label != 'clean' else label}{quality}{evidence}  "
             f"({ranked(record['scores'])})"]
    for tile in record.get("tiles", []):
        left, top, right, bottom = tile["box"]
        tile_quality = f", quality ~{tile['quality']:.0f}" if tile.get("quality") is not None else ""
        lines.append(f"  tile {left},{top}-{right},{bottom}: {ranked(tile['scores'])}{tile_quality}")
    return "\n".join(lines)


def fail(message: str, code: int = EXIT_USAGE) -> None:
    fail_as("ccscore", message, code)


def _count_inputs(paths: list[str], from_list: Optional[str], exclude: list[str], progress,
                  image_column: Optional[str] = None, key_column: Optional[str] = None) -> None:
    """Counts inputs in the background so that the progress bar can show an ETA."""
    from ..inputs import iter_inputs

    try:
        total = 0
        for _ in iter_inputs(paths, from_list, exclude, image_column=image_column, key_column=key_column):
            total += 1
        progress.total = total
    except Exception:
        pass  # only the ETA is lost


COMMANDS_HELP = ("Other commands (each has --help): 'ccscore bench [DIR]' times scoring per execution provider; "
                 "'ccscore heatmap IMAGE -o OUT.png' draws every textured cell's score; 'ccscore report SCORES|DIR "
                 "-o report.html' writes one HTML file to look at a run; 'ccscore act SCORES --copy-to DIR' acts on "
                 "saved scores without scoring again; 'ccscore ray INPUT... --output DIR' scores with Ray Data; "
                 "'ccscore score IMAGE...' is 'ccscore IMAGE...'. A command's name that is also a file or folder "
                 "here is refused: write ./NAME for the path.")


def version_text(model: Optional[Path]) -> str:
    """ccscore's version and the model's name and version (read from its metadata, nothing run)."""
    from .. import __version__
    from ..model_info import default_model_path
    from ..providers import import_onnxruntime

    path = model or default_model_path()
    try:
        ort = import_onnxruntime()
        meta = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta()
        props = meta.custom_metadata_map
        about = f"model {props.get('name', '?')} {props.get('version', '?')} ({path})"
    except Exception as exc:  # a version query still answers: say why the model could not be read
        about = f"model {path} not readable: {one_line(exc)[:200]}"
    return f"ccscore {__version__}; {about}"


@app.command(epilog=COMMANDS_HELP)
def score(
    images: Optional[List[Path]] = typer.Argument(None, help="Image files and folders (walked recursively).",
                                                   show_default=False, readable=False),  # unreadable: a record
    from_list: Optional[str] = typer.Option(None, "--from-list", metavar="FILE",
                                            help="Also score the paths listed in FILE, one a line ('-': stdin)."),
    jsonl: bool = typer.Option(False, "--jsonl", help="One JSON object per image on stdout."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", metavar="FILE",
                                          help="Append records to FILE (JSONL; CSV if it ends in .csv), "
                                               "flushed batch by batch."),
    resume: bool = typer.Option(False, "--resume", help="Continue --output FILE: skip paths it already holds."),
    model: Optional[Path] = typer.Option(None, "--model", help="A ccscore ONNX model (default: the bundled one)."),
    device: str = typer.Option("auto", "--device", help=f"{', '.join(DEVICES)} (any case). A device that is not "
                               "usable here is named on stderr with the reason and the fix; scoring goes on on CPU."),
    aggregate: Optional[str] = typer.Option(None, "--aggregate", metavar="|".join(AGGREGATIONS),
                                            help="How tile probabilities make the image's (default: the model's). "
                                                 "mean, median, max, min: per label over the tiles, then "
                                                 "renormalised; max is each label's highest tile probability, not "
                                                 "the worst tile. worst_half: the mean over the half of the tiles "
                                                 "likeliest damaged (lowest P(clean)), for local damage."),
    threshold: Optional[float] = typer.Option(None, "--threshold", min=0.0, max=1.0,
                                              help="Flag when P(clean) < 1 - T (default: the model's, 0.5). "
                                                   "Lower flags more: more damage caught, more clean images "
                                                   "flagged (README: choosing the threshold)."),
    max_tiles: Optional[int] = typer.Option(None, "--max-tiles", min=MAX_TILES_RANGE[0], max=MAX_TILES_RANGE[1],
                                           help="Tiles per image (default: the model's)."),
    all_tiles: bool = typer.Option(False, "--all-tiles", help="Score every chosen tile. By default an image stops "
                                   "after its first tiles when they are decisive (the model's early_stop)."),
    tiles: bool = typer.Option(False, "--tiles", help="Include per-tile scores and boxes: in JSONL records, and "
                               "as indented lines under each image in readable output (not in CSV)."),
    max_pixels: Optional[int] = typer.Option(None, "--max-pixels", min=1, help="Refuse larger images (default: Pillow's limit)."),
    workers: Optional[int] = typer.Option(None, "--workers", min=0,
                                          help="Worker processes: decode, and on CPU score where more than the session's "
                                               "threads (default: number of cores; 0: all in this process, where "
                                               "--file-timeout cannot apply)."),
    file_timeout: Optional[float] = typer.Option(
        None, "--file-timeout", metavar="SECONDS", min=0,
        help=f"A file that takes its worker longer (decoding, and on CPU scoring) gets a 'too slow' error record (the "
             f"worker is killed and replaced; default {DEFAULT_FILE_TIMEOUT:g}; 0: no limit). Needs worker processes: "
             "refused with --workers 0."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1,
                                             help="Tiles scored, and records written, together, across images "
                                                  "(default: 32 on CPU, 64 on GPU; on CPU the session itself runs "
                                                  "one tile at a time, which keeps it in cache)."),
    flag_below: Optional[float] = typer.Option(None, "--flag-below", metavar="Q",
                                               help="Flag an image only when it is lossy and its estimated "
                                                    "quality is below Q (1-101); --select, the actions and the "
                                                    "summary follow. Default: every lossy image is flagged."),
    details: bool = typer.Option(False, "--details", help="Add a 'details' object to JSONL records: the luma "
                                 "quantisation table read from the pixels, its kind, the grid offsets and the "
                                 "chroma subsampling guess (README: record fields)."),
    select: Optional[str] = typer.Option(None, "--select", metavar="flagged|clean",
                                         help="Images that actions take and stdout shows (default: actions take "
                                              "flagged ones, stdout shows all; errors always show)."),
    copy_to: Optional[Path] = typer.Option(None, "--copy-to", metavar="DIR", help="Copy selected images into DIR."),
    symlink_to: Optional[Path] = typer.Option(None, "--symlink-to", metavar="DIR", help="Symlink selected images into DIR."),
    move_to: Optional[Path] = typer.Option(None, "--move-to", metavar="DIR", help="Move selected images into DIR."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print what --copy-to/--symlink-to/--move-to would do and the "
                                 "records; change nothing on disk (--output is only read, with --resume)."),
    progress_opt: Optional[bool] = typer.Option(None, "--progress/--no-progress",
                                                help="Progress bar on stderr (default: when stderr is a terminal)."),
    show_version: bool = typer.Option(False, "--version", help="Print ccscore's version and the model's name and "
                                      "version (--model's, or the bundled one), then exit."),
    summary_json: Optional[Path] = typer.Option(None, "--summary-json", metavar="FILE",
                                                help="Write the run's summary as JSON to FILE when it ends "
                                                     "(replaced if it holds an earlier summary; README)."),
    image_column: Optional[str] = typer.Option(None, "--image-column", metavar="COL",
                                               help="Parquet inputs: the column of encoded image bytes (default: "
                                                    "the only binary column)."),
    key_column: Optional[str] = typer.Option(None, "--key-column", metavar="COL",
                                             help="Parquet inputs: records are keyed FILE/VALUE of this column "
                                                  "(default: 'key' when present, else the row number)."),
) -> None:
    """Tells whether each image carries lossy compression artifacts (the model's labels: JPEG, WebP, AVIF, JPEG XL), how strong, and where.

    Folders are walked recursively (image extensions only, each real file once); files named on the command line or in --from-list are always tried, once per mention. A .tar shard or a .parquet file stands for the images in it, each keyed SHARD/MEMBER (or FILE/KEY); they are never acted on.

    Records go to stdout (readable, or --jsonl) and/or --output FILE; a run stopped at any point continues with --resume.

    An image is flagged when its label is not 'clean' (with --flag-below Q: and its quality is below Q). Actions keep paths relative to the input folder, never overwrite (a -1, -2 suffix avoids collisions) and leave sources untouched except --move-to.

    Exit status: 0 all scored, 1 some files failed (or actions failed, or folders were unreadable), 2 usage error (bad option or value, unusable model, --output or --summary-json), 130 interrupted (Ctrl-C; continue with --resume), 141 stdout closed early.
    """
    from ..actions import (PAST_TENSE, ActionError, ActionJournal, Mover, action_targets, destination_problem,
                           mover_for)
    from ..blas import limit_blas_threads
    from ..errors import OnnxRuntimeMissing
    from ..inputs import is_shard_name, iter_inputs
    from ..outputs import (PARQUET_RECORDS_SUFFIX, JsonlWriter, OutputError, is_csv, is_parquet, open_output,
                           scan_output)
    from ..pipeline import Progress, run_pipeline, start_workers
    from ..scorer import Scorer
    from ..summary import RunSummary, check_summary_path, write_summary

    if show_version:
        typer.echo(version_text(model))
        raise typer.Exit(EXIT_OK)
    paths = [os.fspath(p) for p in (images or [])]
    if not paths and from_list is None:
        fail("nothing to score: give image files or folders, or --from-list FILE")
    select_given = select is not None
    try:
        selection = Selection(select or "flagged", flag_below)
    except ValueError as exc:
        fail(str(exc))
    targets = action_targets(copy_to, symlink_to, move_to)
    if len(targets) > 1:
        fail("use only one of --copy-to, --symlink-to, --move-to")
    if dry_run and not targets:
        fail("--dry-run needs --copy-to, --symlink-to or --move-to")
    if tiles and output is not None and (is_csv(os.fspath(output)) or is_parquet(os.fspath(output))):
        fail("--tiles cannot go into a CSV or Parquet --output (one row per image): use a .jsonl output for "
             "per-tile scores")
    if details and output is not None and (is_csv(os.fspath(output)) or is_parquet(os.fspath(output))):
        fail("--details cannot go into a CSV or Parquet --output (one flat row per image): use a .jsonl output")
    if resume and output is None:
        fail("--resume needs --output FILE")
    if summary_json is not None and (problem := check_summary_path(os.fspath(summary_json))):
        fail(problem)
    if summary_json is not None and output is not None and os.path.realpath(summary_json) in {
            os.path.realpath(output), os.path.realpath(os.fspath(output) + JOURNAL_SUFFIX)}:
        fail("--summary-json must not be the --output file or its journal: it would replace the records")
    if from_list is not None and from_list != "-" and not os.path.isfile(from_list):
        fail(f"--from-list {from_list}: no such file")
    shards = [p for p in paths if is_shard_name(p) and not os.path.isdir(p)]
    if targets and shards:
        # The images of a shard are not files: moving one would mean rewriting the shard, which is never done.
        fail(f"--{targets[0][0]}-to acts on image files; {shards[0]} is a shard (its images are scored, never "
             f"acted on): score shards without --copy-to/--symlink-to/--move-to, then select from the records")
    if any(is_parquet(p) for p in shards) or (output is not None and is_parquet(os.fspath(output))):
        from ..shards import import_parquet

        try:
            import_parquet()
        except ImportError as exc:
            fail(one_line(exc))
    if targets and (problem := destination_problem(targets[0][0], os.fspath(targets[0][1]),
                                                   [p for p in paths if os.path.isdir(p)], "the input folder")):
        # A destination inside an input folder is left out of the walk; one that is an input folder, or holds
        # one, would have every flagged file acted on in place (renamed to NAME-1): refused.
        fail(problem)

    if workers == 0 and file_timeout:  # a limit asked for is enforced, or refused: never dropped in silence
        fail("--file-timeout needs worker processes: with --workers 0 every file decodes in this process, where no "
             "time limit can stop it")
    time_limit = (DEFAULT_FILE_TIMEOUT if file_timeout is None else file_timeout) or None
    if workers is None:
        only_few_files = from_list is None and len(paths) <= 2 and not any(os.path.isdir(p) for p in paths)
        # Only a worker process can be stopped midway through a decoder: one is enough for a few files.
        workers = (1 if time_limit else 0) if only_few_files else (os.cpu_count() or 1)
    limit_blas_threads(1)  # this process is ours: numpy's BLAS threads only spin beside the session's (ccscore.blas)
    pool = start_workers(workers, time_limit, model, device)  # they start up while the session is created

    def abort(message: str) -> None:
        if pool is not None:
            pool.close()
        fail(message)

    try:
        scorer = Scorer(model, device=device, aggregate=aggregate, threshold=threshold, max_tiles=max_tiles,
                        max_pixels=max_pixels, batch_size=batch_size or CPU_BATCH, all_tiles=all_tiles,
                        file_timeout=time_limit)
    except (OnnxRuntimeMissing, CCScoreError, ValueError) as exc:
        abort(one_line(exc))  # a model's names can hold anything; the error stays one line
    if scorer.fallback_note:
        typer.echo(f"ccscore: warning: {scorer.fallback_note}", err=True)
    if batch_size is None:
        # On CPU a batch only sets how often records are flushed (the session runs tile by tile, see
        # providers.ChunkedSession); accelerators want full batches.
        batch_size = CPU_BATCH if scorer.providers[:1] == ["CPUExecutionProvider"] else GPU_BATCH
        scorer.batch_size = batch_size

    done: Counter = Counter()
    writer = None
    journal = None
    mover = Mover(targets[0][0], os.fspath(targets[0][1]), dry_run) if targets else None
    if mover is not None and not dry_run:
        try:
            mover.claim_destination()
        except (OSError, ActionError) as exc:
            fail(one_line(exc))
    counts = Counter()  # actions and folders; records are counted by `summary`
    summary = RunSummary(scorer.labels, selection)
    in_flight: set[int] = set()  # journaled actions not finished yet
    plan_stream = sys.stderr if jsonl else sys.stdout

    def report(message: str) -> None:
        progress.close()
        say(f"ccscore: error: {message}")

    def act(action, resuming: bool = False) -> None:
        try:
            acted = mover_for(action, mover).carry_out(action, resuming)
            counts["acted" if acted else "already"] += 1
            if dry_run:
                progress.close()
                print(mover.describe(action), file=plan_stream, flush=True)
        except ActionError as exc:  # reported, not retried: the record stands, the file stays where it is
            counts["action_failed"] += 1
            report(str(exc))
        if journal is not None:
            journal.record_done(action)
            in_flight.discard(action.id)

    progress = Progress(enabled=progress_opt)
    if output is not None and dry_run:
        # A dry run changes nothing on disk: the output is only read (to skip what it holds), never created.
        if resume and ((os.path.isfile(output) and os.path.getsize(output)) or (
                is_parquet(os.fspath(output)) and os.path.exists(os.fspath(output) + PARQUET_RECORDS_SUFFIX))):
            try:
                done, _ = scan_output(os.fspath(output), scorer.labels)
            except OutputError as exc:
                abort(str(exc))
    elif output is not None:
        try:
            writer, done, cut = open_output(os.fspath(output), scorer.labels, resume)
        except OutputError as exc:
            abort(str(exc))
        if cut:
            say(f"ccscore: note: cut {cut} bytes of an incomplete last record off {output}")
    if writer is not None and (os.path.isfile(output) or is_parquet(os.fspath(output))):  # not /dev/stdout
        journal = ActionJournal(os.fspath(output) + JOURNAL_SUFFIX)
        try:
            pending = journal.pending()
        except ActionError as exc:
            abort(str(exc))
        # Actions a killed run had journaled: those whose record was written may have started, so they are
        # completed (each exactly once: `carry_out` finds a finished one done); the others never started.
        completed = 0
        try:
            for action in pending:
                if done[action.path] > 0:
                    if mover is not None:
                        mover.sources.add(action.src)
                        mover.claimed.add(action.dst)
                    act(action, resuming=True)
                    completed += 1
                else:
                    mover_for(action, mover).roll_back(action)
            journal.clear()
        except (OSError, ActionError) as exc:  # the journal stays: the next --resume tries again
            abort(f"cannot finish the actions an interrupted run left: {one_line(exc)}")
        if pending:
            typer.echo(f"ccscore: note: an interrupted run left {len(pending)} actions unfinished: {completed} "
                       f"completed, {len(pending) - completed} never started", err=True)
    stdout_writer = JsonlWriter(sys.stdout.buffer) if jsonl else None
    show_readable = not jsonl and (output is None or dry_run)

    exclude = [os.fspath(targets[0][1])] if targets else []
    skipped = 0

    def unreadable(path: str, reason: str) -> None:
        counts["unreadable"] += 1
        report(f"cannot read folder {path}: {reason}; nothing in it was scored")

    def not_an_image(path: str) -> None:
        counts["not_images"] += 1

    def pending_items():
        nonlocal skipped
        for item in iter_inputs(paths, from_list, exclude, on_unreadable=unreadable, on_skipped=not_an_image,
                                image_column=image_column, key_column=key_column):
            if done and done[item.path] > 0:
                done[item.path] -= 1
                skipped += 1
                progress.skipped = skipped
                continue
            yield item

    if progress.enabled and from_list != "-":
        threading.Thread(target=_count_inputs, args=(paths, from_list, exclude, progress, image_column, key_column),
                         daemon=True).start()
    start = time.monotonic()

    def on_batch(pairs) -> None:
        records = []
        actions = []
        for decoded, record in pairs:
            summary.add(record)
            if "error" in record:
                if show_readable:
                    progress.close()
                    say(f"{record['path']}: error: {record['error']}")
            else:
                item = decoded.item
                if item.outside:  # so that `ccscore act` on these records leaves it alone too
                    record["outside"] = True
                if mover is not None and selection.takes(record):
                    if item.embedded is not None:  # a shard's member from --from-list
                        counts["action_failed"] += 1
                        report(f"{item.path} lies inside a shard: not {PAST_TENSE[mover.kind]} (shards are never "
                               f"changed)")
                    elif item.outside:
                        counts["action_failed"] += 1
                        report(f"{item.path} lies outside the input folders (reached through a symlink): "
                               f"not {PAST_TENSE[mover.kind]}")
                    else:
                        action = mover.plan(item.source, item.relative, item.path)
                        if action is None:
                            counts["already"] += 1  # the same real file, reached again
                        else:
                            actions.append(action)
            records.append(record)
        # Intent, then record, then action: a kill at any point leaves either nothing done or a journaled
        # action with its record, which --resume completes.
        if journal is not None and actions:
            journal.record_intents(actions)
            in_flight.update(a.id for a in actions)
        if writer is not None:
            writer.write_batch(records, durable=bool(actions))
        for action in actions:
            act(action)
        if journal is not None and actions and not in_flight:
            journal.compact()
        shown = [r for r in records if "error" in r or not select_given or selection.takes(r)]
        if stdout_writer is not None:
            stdout_writer.write_batch(shown)
        elif show_readable:
            for r in shown:
                if "error" not in r:
                    progress.close()
                    print(readable(r), flush=True)
        progress.update(summary.scored + summary.failed, summary.failed)

    def silence_stdout() -> None:
        # Nothing more can reach stdout; keep the interpreter's final flush from printing a traceback.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError:
            pass

    interrupted = 0
    write_error = None
    signal.signal(signal.SIGINT, signal.default_int_handler)  # from here Ctrl-C stops the run cleanly, below
    try:
        run_pipeline(scorer, pending_items(), workers, batch_size, on_batch, with_tiles=tiles, pool=pool,
                     with_details=details)
    except KeyboardInterrupt:
        interrupted = EXIT_INTERRUPTED
    except BrokenPipeError:
        # stdout closed early (e.g. piped into `head`): stop, records written to --output so far stand.
        silence_stdout()
        interrupted = EXIT_BROKEN_PIPE
    except OSError as exc:  # disk full, a vanished mount...: what was written stands, the run cannot go on
        silence_stdout()
        write_error = f"cannot write records: {exc.strerror or one_line(exc)}"
    except DecodePoolError as exc:  # no worker can be started (out of processes, memory): records so far stand
        write_error = one_line(exc)
    finally:
        signal.signal(signal.SIGINT, exit_interrupted)
        progress.close()
        if journal is not None:
            try:
                if in_flight:
                    journal.close()  # --resume finishes them
                else:
                    journal.clear()
            except OSError as exc:
                write_error = write_error or f"cannot write the action journal: {exc.strerror or one_line(exc)}"
        if writer is not None:
            try:
                writer.close()
            except OSError as exc:
                write_error = write_error or f"cannot write records: {exc.strerror or one_line(exc)}"

    elapsed = time.monotonic() - start
    n = summary.scored + summary.failed
    parts = [f"{summary.scored} scored", f"{summary.failed} failed", f"{summary.flagged} flagged"]
    if skipped:
        parts.append(f"{skipped} already in {output}")
    if mover is not None:
        verb = PAST_TENSE[mover.kind]
        parts.append(f"{counts['acted']} {'to be ' + verb if dry_run else verb}")
        if counts["already"]:
            parts.append(f"{counts['already']} already in {mover.dest}")
        if counts["action_failed"]:
            parts.append(f"{counts['action_failed']} actions failed")
    if counts["unreadable"]:
        parts.append(f"{counts['unreadable']} folders unreadable")
    if counts["not_images"]:
        parts.append(f"{counts['not_images']} files skipped (not images)")
    line = ", ".join(parts) + f" in {elapsed:.1f}s"
    if n and elapsed >= MIN_RATE_SECONDS:  # a rate over an empty or sub-second run means nothing
        line += f" ({n / elapsed:.1f} images/s)"
    stopped = {EXIT_INTERRUPTED: "interrupted: ", EXIT_BROKEN_PIPE: "stdout closed: "}.get(interrupted, "")
    say(f"ccscore: {stopped}{line}")
    if summary.scored:
        typer.echo(f"ccscore: {summary.detail_line()}", err=True)
    if counts["action_failed"] and writer is not None:
        # Their records are written, so --resume skips those images: said here, not left to be found out.
        typer.echo(f"ccscore: note: the {counts['action_failed']} images whose actions failed stay where they are, "
                   f"and --resume does not act on them again (their records are written)", err=True)
    code = EXIT_SOME_FAILED if write_error else interrupted or (
        EXIT_SOME_FAILED if summary.failed or counts["action_failed"] or counts["unreadable"] else EXIT_OK)
    if summary_json is not None:
        try:
            write_summary(os.fspath(summary_json), summary.to_dict(
                already_done=skipped, acted=counts["acted"] if mover is not None else None,
                actions_failed=counts["action_failed"], unreadable_folders=counts["unreadable"],
                skipped_not_images=counts["not_images"],
                interrupted=bool(interrupted), exit_status=code, seconds=round(elapsed, 3)))
        except OSError as exc:
            write_error = write_error or f"cannot write --summary-json {summary_json}: {exc.strerror or exc}"
    if write_error:
        fail(write_error, EXIT_SOME_FAILED)
    raise typer.Exit(code)

