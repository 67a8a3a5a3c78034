"""`ccscore act SCORES --copy-to|--symlink-to|--move-to DIR`: act on a saved run's decisions, scoring nothing.

The same selection (`selection.Selection`) and the same journaled actions (`actions.Mover`, `ActionJournal`)
as the score command: never overwrite, never collide, sources untouched except by a move, `--dry-run`
writes nothing.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Iterator, Optional

import typer

from . import EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, command_app, fail_as, say

app = command_app()

JOURNAL_NAME = ".ccscore-act-journal"  # in the destination: what a killed `act` had started
BATCH = 64  # actions journaled together (one fsync per batch)
# A move keeps a file's mtime, but a file system with a coarse clock (FAT keeps 2 s) may date the moved file a
# little after the scores written elsewhere.
MTIME_SLACK_S = 2.0


def fail(message: str, code: int = EXIT_USAGE) -> None:
    fail_as("ccscore act", message, code)


def source_problem(path: str) -> Optional[str]:
    """Why the file a record names cannot be acted on (one line), or None."""
    try:
        if not os.path.lexists(path):
            return "no such file (moved or deleted since it was scored?)"
        if not os.path.isfile(path):
            return "not a regular file"
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def shows_scored_image(record: dict, path: str, scores_written: float) -> bool:
    """Whether the file at `path` shows every fact `record` gives of the image it scored: the evidence that a
    source now gone was moved there. It was not written since the scores were (a move keeps a file's mtime), it
    has the record's header facts (`container`, in JSONL records) and its width and height (EXIF orientation
    applied, as when scored). Evidence, not proof: another image with all the same facts, dated before the
    scores, would pass. A record without width and height shows nothing."""
    from ..container import read_container
    from ..errors import ImageError
    from ..images import DEFAULT_MAX_PIXELS, oriented_size

    width, height = record.get("width"), record.get("height")
    if not width or not height:
        return False
    try:
        if os.stat(path).st_mtime > scores_written + MTIME_SLACK_S:
            return False
    except OSError:
        return False
    facts = read_container(path)
    if any(facts.get(key) != value for key, value in (record.get("container") or {}).items()):
        return False
    try:
        return oriented_size(path, max(DEFAULT_MAX_PIXELS, width * height)) == (width, height)
    except ImageError:
        return False


@app.command()
def act(
    scores: Path = typer.Argument(..., help="Records of a run: the JSONL or CSV that 'ccscore --output' wrote.",
                                  readable=False),
    select: str = typer.Option("flagged", "--select", metavar="flagged|clean", help="Images to act on."),
    flag_below: Optional[float] = typer.Option(None, "--flag-below", metavar="Q",
                                               help="Count an image as flagged only when it is lossy and its "
                                                    "quality is below Q (as the score command's --flag-below)."),
    copy_to: Optional[Path] = typer.Option(None, "--copy-to", metavar="DIR", help="Copy selected images into DIR."),
    symlink_to: Optional[Path] = typer.Option(None, "--symlink-to", metavar="DIR", help="Symlink selected images into DIR."),
    move_to: Optional[Path] = typer.Option(None, "--move-to", metavar="DIR", help="Move selected images into DIR."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print what would be done; change nothing on disk."),
    base: Optional[Path] = typer.Option(None, "--base", metavar="DIR",
                                        help="Folder that relative paths in SCORES are relative to (default: the "
                                             "current one, where the scoring run was started)."),
) -> None:
    """Copies, links or moves the images a saved run selected, without scoring them again.

    Paths under DIR keep their layout relative to the folder that holds all the selected images; a name
    already taken gets a -1, -2 suffix (never overwritten); sources are untouched except by --move-to. A record
    whose file is missing or unusable gets a one-line error on stderr and the run goes on. A killed run leaves
    DIR/.ccscore-act-journal: the same command finishes what it had started. Run again after a --move-to
    finished, an image whose file is gone counts as already in DIR when the file at its name there shows what
    its record says of it (not written since, same size and header facts); otherwise it is an error.

    Exit status: 0 done, 1 some records or actions failed, 2 usage error, 130 interrupted (Ctrl-C: the same
    command finishes the job).
    """
    from ..actions import (PAST_TENSE, Action, ActionError, ActionJournal, Mover, action_targets,
                           destination_problem, mover_for)
    from ..errors import one_line
    from ..inputs import is_within
    from ..outputs import OutputError, RecordsFile
    from ..selection import Selection

    try:
        selection = Selection(select, flag_below)
    except ValueError as exc:
        fail(str(exc))
    targets = action_targets(copy_to, symlink_to, move_to)
    if len(targets) != 1:
        fail("give exactly one of --copy-to, --symlink-to, --move-to")
    kind, dest = targets[0][0], os.fspath(targets[0][1])
    if base is not None and not os.path.isdir(base):
        fail(f"--base {base} is not a folder")
    try:
        records = RecordsFile(os.fspath(scores))
    except OutputError as exc:
        fail(str(exc))

    def selected() -> Iterator[tuple[dict, Optional[str]]]:
        """(record, its path from here) for each selected record; (record, None) for each line that is not one."""
        for record in records:
            if "line" in record:
                yield record, None
            elif selection.takes(record):
                yield record, os.path.join(os.fspath(base), record["path"]) if base is not None else record["path"]

    # The layout under DEST is kept relative to the real folder holding the folders of every selected record
    # (the saved records do not say which folders the scoring run was given): files of the same name in
    # different folders stay apart, and the layout is the same whichever files a killed move already took.
    folders = {os.path.realpath(folder)
               for folder in {os.path.dirname(os.path.abspath(path)) for _, path in selected() if path}}
    root = os.path.commonpath(sorted(folders)) if folders else None
    if problem := destination_problem(kind, dest, [root] if root else [], "the folder of the images"):
        fail(problem)
    real_dest = os.path.realpath(dest)
    scores_file = os.stat(scores)

    def problem_of(record: dict, path: str, real: str) -> Optional[str]:
        """Why the file a record names is not acted on (one line), or None."""
        if record.get("outside"):
            return "lay outside the scored folders (reached through a symlink): not acted on, as when scored"
        if problem := source_problem(path):
            return problem
        if not is_within(real, root):
            return f"lies outside {root}, the folder of the images (a symlink leaves it); not acted on"
        if is_within(real, real_dest):
            return f"lies in {dest} already; not acted on"
        try:
            if os.path.samestat(os.stat(real), scores_file):
                return "is the scores file being read; not acted on"
        except OSError as exc:
            return exc.strerror or str(exc)
        return None

    def moved_earlier(record: dict, path: str, real: str) -> Optional[Action]:
        """For --move-to, the move a finished run made of a record's file that is gone (only a killed run's
        journal is kept: DIR itself must show it), or None."""
        if record.get("outside") or os.path.lexists(path) or not is_within(real, root) or is_within(real, real_dest):
            return None
        return mover.find_moved(real, os.path.relpath(real, root), record["path"],
                                lambda candidate: shows_scored_image(record, candidate, scores_file.st_mtime))

    counts: Counter = Counter()
    mover = Mover(kind, dest, dry_run)
    journal = ActionJournal(os.path.join(dest, JOURNAL_NAME))  # only read by a dry run
    if not dry_run:
        try:
            mover.claim_destination()
        except (OSError, ActionError) as exc:
            fail(one_line(exc), EXIT_SOME_FAILED)

    def error(message: str) -> None:
        counts["failed"] += 1
        say(f"ccscore act: error: {message}")

    def carry_out(actions: list, resuming: bool = False) -> None:
        if not dry_run and not resuming:
            os.makedirs(dest, exist_ok=True)
            journal.record_intents(actions)
        for action in actions:
            try:
                acted = mover_for(action, mover).carry_out(action, resuming)
                counts["acted" if acted else "already"] += 1
                print(mover.describe(action), flush=True)
            except ActionError as exc:
                error(str(exc))
            if not dry_run:
                journal.record_done(action)

    try:
        # A killed `act` journaled these: finish each pending one exactly once; the finished ones (a move's
        # source is gone) count as done, not as missing files.
        pending, finished = journal.read()
        mover.sources |= finished
        for action in pending:
            mover.sources.add(action.src)
            mover.claimed.add(action.dst)
        pending_sources = {action.src for action in pending}
        if pending and dry_run:
            typer.echo(f"ccscore act: note: an interrupted run started {len(pending)} actions; the same command "
                       f"without --dry-run finishes them", err=True)
        elif pending:
            carry_out(pending, resuming=True)
            typer.echo(f"ccscore act: note: finished {len(pending)} actions an interrupted run had started",
                       err=True)
        batch = []
        for record, path in selected():
            if path is None:
                error(f"{record['path']}: {record['error']}")
                continue
            counts["selected"] += 1
            real = os.path.realpath(path)
            if real in pending_sources:
                continue  # counted as it was finished above
            if real in mover.sources:  # named twice, or acted on by the killed run this one finishes
                counts["already"] += 1
                continue
            if (done := moved_earlier(record, path, real)) is not None:
                counts["already"] += 1
                print(mover.describe(done), flush=True)
                continue
            if problem := problem_of(record, path, real):
                error(f"{record['path']}: {problem}")
                continue
            action = mover.plan(real, os.path.relpath(real, root), record["path"])
            batch.append(action)
            if len(batch) >= BATCH:
                carry_out(batch)
                batch = []
        carry_out(batch)
        if not dry_run:
            journal.clear()
    except (OSError, ActionError) as exc:  # the journal stays: the same command finishes the actions
        journal.close()
        fail(f"cannot act: {one_line(exc)}", EXIT_SOME_FAILED)

    verb = PAST_TENSE[kind]
    parts = [f"{counts['selected']} selected", f"{counts['acted']} {'to be ' + verb if dry_run else verb}"]
    if counts["already"]:
        parts.append(f"{counts['already']} already in {dest}")
    if counts["failed"]:
        parts.append(f"{counts['failed']} failed")
    say("ccscore act: " + ", ".join(parts))
    raise typer.Exit(EXIT_SOME_FAILED if counts["failed"] else EXIT_OK)
