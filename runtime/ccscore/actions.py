"""Acting on decisions: copy, symlink or move selected images into a folder, keeping their relative layout.

Rules: never overwrite, never merge two different sources under one name (a `-1`, `-2`... suffix goes
before the extension), never touch a source except to move it. Sources are real files (symlinks resolved by
the walk): a symlink is never moved in place of the file it points to.

Crash safety:
- A copy (and a move across file systems) is written under a temporary name beside its target
  (`.NAME.ccscore-partial`), fsynced, then linked to the real name: a kill never leaves a truncated file
  under the real name, and the next attempt at the same target removes the stale temporary first. A move
  across file systems syncs the target's folder before it unlinks the source (they commit apart).
- A move is a hard link then an unlink of the source: killed in between, both names are the same file,
  and the next attempt finishes it (it never makes a second copy).
- With an output file, the CLI records each action's intent in an `ActionJournal` before the records and
  the action, so that `--resume` completes or rolls back every interrupted action exactly once.
- An action whose target already holds the same thing (the same bytes for a copy, a link to the same
  source, the very file for a move) counts as done.
"""

from __future__ import annotations

import errno
import filecmp
import json
import os
import shutil
from dataclasses import asdict, dataclass
from typing import Callable, Iterable, Optional

from .outputs import shown_path

KINDS = ("copy", "symlink", "move")
VERBS = {"copy": "copy", "symlink": "link", "move": "move"}
PAST_TENSE = {"copy": "copied", "symlink": "linked", "move": "moved"}
PARTIAL = ".ccscore-partial"


class ActionError(Exception):
    pass


def action_targets(copy_to, symlink_to, move_to) -> list[tuple[str, object]]:
    """(kind, destination) for each of --copy-to, --symlink-to, --move-to given (the commands refuse more than one)."""
    return [(kind, d) for kind, d in (("copy", copy_to), ("symlink", symlink_to), ("move", move_to)) if d]


def destination_problem(kind: str, dest: str, folders: Iterable[str], what: str) -> Optional[str]:
    """Why `dest` cannot take this kind of action (a usage error, one line), or None: it must be a folder (or
    not exist yet) and must not be, or hold, any of `folders` (`what` names them), where every file would be
    acted on in place."""
    from .inputs import is_within

    if os.path.exists(dest) and not os.path.isdir(dest):
        return f"--{kind}-to {dest} exists and is not a directory"
    real_dest = os.path.realpath(dest)
    for folder in folders:
        if is_within(os.path.realpath(folder), real_dest):
            return f"--{kind}-to {dest} is, or holds, {what} {folder}; choose a destination outside it"
    return None


@dataclass
class Action:
    """One planned action: `src` (a real file) into `dst`; `path` names the record that asked for it."""
    id: int
    kind: str
    src: str
    dst: str
    path: str
    relative: str  # the layout kept under the destination
    already: bool = False  # the target already holds this source


def partial_name(target: str) -> str:
    """The temporary name a copy is written under before it is linked to `target`."""
    folder, name = os.path.split(target)
    return os.path.join(folder, f".{name}{PARTIAL}")


def _safe_relative(rel: str) -> str:
    """A relative path that cannot climb out of the destination folder."""
    parts = [p for p in rel.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    return os.path.join(*parts) if parts else "image"


def _candidates(target: str):
    stem, ext = os.path.splitext(target)
    yield target
    n = 1
    while True:
        yield f"{stem}-{n}{ext}"
        n += 1


def _regular_file(path: str) -> bool:
    return os.path.isfile(path) and not os.path.islink(path)


def _same_file_content(a: str, b: str) -> bool:
    try:
        return _regular_file(b) and filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _sync_folder(folder: str) -> None:
    """Makes the names in `folder` durable: a moved copy's name must reach the disk before its source is unlinked
    on another file system (the two commit apart: a power loss between them would keep neither)."""
    try:
        fd = os.open(folder or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # a file system that cannot (some network shares): nothing better exists
    finally:
        os.close(fd)


def link_no_overwrite(src: str, dst: str) -> None:
    """Gives file `src` the name `dst` atomically, never replacing an existing `dst` (FileExistsError)."""
    try:
        os.link(src, dst)
        return
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
            raise
    # No hard links here (FAT, some network shares): rename, which is atomic but may replace a name that
    # appeared since this check; nothing better exists without renameat2.
    if os.path.lexists(dst):
        raise FileExistsError(dst)
    os.rename(src, dst)


def copy_atomically(src: str, dst: str) -> None:
    """Copies bytes and times to `dst` through a fsynced temporary file: `dst` appears complete or not at all."""
    tmp = partial_name(dst)
    _remove(tmp)  # a stale one from a killed attempt (the name is ours alone)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with open(src, "rb") as fsrc, os.fdopen(fd, "wb") as fdst:
            fd = -1
            shutil.copyfileobj(fsrc, fdst, 1 << 20)
            fdst.flush()
            os.fsync(fdst.fileno())
        shutil.copystat(src, tmp, follow_symlinks=True)
        link_no_overwrite(tmp, dst)
    finally:
        if fd != -1:
            os.close(fd)
        _remove(tmp)


class Mover:
    """Carries out one kind of action into `dest`, or only says what it would do (`dry_run`)."""

    def __init__(self, kind: str, dest: str, dry_run: bool = False):
        if kind not in KINDS:
            raise ValueError(f"unknown action {kind!r}")
        self.kind = kind
        self.dest = dest
        self.dry_run = dry_run
        self.claimed: set[str] = set()  # targets this run has planned (dry runs create nothing on disk)
        self.sources: set[str] = set()  # real sources this run has acted on: a file reached twice is acted on once
        self.done = 0
        self._next_id = 0
        self._lock_fd: Optional[int] = None

    def claim_destination(self) -> None:
        """Creates the destination and locks it while this process lives: a second run acting into the same
        folder would finish this one's journaled actions under its feet and link its half-written copies."""
        from .outputs import hold_lock

        os.makedirs(self.dest, exist_ok=True)
        fd = os.open(self.dest, os.O_RDONLY)
        if not hold_lock(fd):
            os.close(fd)
            raise ActionError(f"another ccscore run is acting into {self.dest}; wait for it to end")
        self._lock_fd = fd

    def release_destination(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _holds(self, src: str, candidate: str) -> bool:
        """Whether an existing `candidate` already holds `src` as this kind of action would leave it."""
        if self.kind == "symlink":
            return os.path.islink(candidate) and os.readlink(candidate) == os.path.abspath(src)
        if self.kind == "copy":
            return _same_file_content(src, candidate)
        # The source itself, a move killed between its link and unlink, or one killed across file systems between
        # its copy and unlink (a regular file of the same bytes: with no journal to say so, the bytes must)
        return _same_file(src, candidate) or _same_file_content(src, candidate)

    def target_for(self, src: str, relative: str,
                   holds: Optional[Callable[[str], bool]] = None) -> tuple[str, bool]:
        """(target path, already done): the first free name, or one that already holds this source (`holds`
        recognises it; by default as this kind of action leaves it)."""
        holds = holds or (lambda candidate: self._holds(src, candidate))
        base = os.path.join(self.dest, _safe_relative(relative))
        for candidate in _candidates(base):
            if candidate in self.claimed:
                continue
            if os.path.lexists(candidate):
                if holds(candidate):
                    return candidate, True
                continue
            return candidate, False
        raise AssertionError("unreachable")

    def plan(self, src: str, relative: str, path: str) -> Optional[Action]:
        """Chooses a target for real file `src`; None when this run has already acted on it."""
        src = os.path.abspath(src)
        if src in self.sources:
            return None
        target, already = self.target_for(src, relative)
        return self._planned(src, target, path, relative, already)

    def find_moved(self, src: str, relative: str, path: str, is_it: Callable[[str], bool]) -> Optional[Action]:
        """For a move whose source `src` is gone: the move an earlier, finished run made (already done), or None.

        Its target is the one `plan` chose then: the first name for `relative` (then -1, -2...) that was free, so
        only the names in use up to the first free one are looked at, and the first of them that is a regular
        file `is_it` recognises as the image is taken. `is_it` is the evidence: a gone source is never counted
        as moved without it."""
        src = os.path.abspath(src)
        if self.kind != "move" or src in self.sources:
            return None
        target, found = self.target_for(src, relative, lambda candidate: _regular_file(candidate) and is_it(candidate))
        return self._planned(src, target, path, relative, True) if found else None

    def _planned(self, src: str, target: str, path: str, relative: str, already: bool) -> Action:
        self.sources.add(src)
        self.claimed.add(target)
        self._next_id += 1
        return Action(self._next_id, self.kind, src, target, path, relative, already)

    def describe(self, action: Action) -> str:
        """The line printed of `action`: its paths as `outputs.shown_path` shows them (one line whatever the names)."""
        src, dst = shown_path(action.src), shown_path(action.dst)
        if self.dry_run and not action.already:
            return f"would {VERBS[action.kind]} {src} -> {dst}"
        return f"{VERBS[action.kind]} {src} -> {dst}" + (" (already there)" if action.already else "")

    def carry_out(self, action: Action, resuming: bool = False) -> bool:
        """Performs `action` (True), or finds it already done (False); raises `ActionError`.

        Safe to repeat at any stage of an interrupted attempt, journaled or not: a move's target that holds the
        source's bytes (a move killed across file systems before its unlink) finishes with the unlink. `resuming`:
        the action was journaled, so a target that is there while its source is gone was this action's finished
        move. If the target was taken meanwhile, the next free name is used.
        """
        if self.dry_run:
            return not action.already
        for _attempt in range(100):
            try:
                acted = self._carry_out_once(action, resuming)
            except FileExistsError:
                resuming = False  # the name is someone else's: the next free one is ours alone
                action.dst, action.already = self.target_for(action.src, action.relative)
                self.claimed.add(action.dst)
                continue
            except OSError as exc:
                raise ActionError(f"cannot {VERBS[action.kind]} {action.src} -> {action.dst}: "
                                  f"{exc.strerror or exc}") from None
            self.done += acted
            return acted
        raise ActionError(f"cannot find a free name for {action.src} in {self.dest}")

    def _carry_out_once(self, action: Action, resuming: bool) -> bool:
        src, dst = action.src, action.dst
        os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
        if action.kind != "symlink":
            _remove(partial_name(dst))  # a killed attempt's temporary (even one already linked to `dst`)
        if os.path.lexists(dst):
            if self._holds(src, dst):
                if action.kind == "move" and os.path.realpath(dst) != os.path.realpath(src):
                    if not _same_file(src, dst):  # a copy on another file system: its name on disk first
                        _sync_folder(os.path.dirname(dst))
                    # the link (or copy) half of the move was done: by this action (a killed attempt) where the name
                    # was free when it was planned, so that it may take it back; a name there before is the user's
                    _finish_move(src, dst, drop_target=not action.already)
                    return True
                return False  # in place already (a source inside the destination is never unlinked)
            if action.kind == "move" and resuming and not os.path.lexists(src):
                return False  # moved before the kill
            raise FileExistsError(dst)
        if action.kind == "copy":
            copy_atomically(src, dst)
        elif action.kind == "symlink":
            os.symlink(os.path.abspath(src), dst)
        else:
            try:
                os.link(src, dst)  # fails if dst exists: no overwrite, even under a race
            except FileExistsError:
                raise
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
                    raise
                copy_atomically(src, dst)  # another file system, or no hard links
                _sync_folder(os.path.dirname(dst))
            _finish_move(src, dst, drop_target=True)
        return True

    def roll_back(self, action: Action) -> None:
        """Undoes the traces of an action that never started (its record was not written): a stale temporary."""
        _remove(partial_name(action.dst))


def _finish_move(src: str, dst: str, drop_target: bool) -> None:
    """Unlinks a move's source once `dst` holds it. Where the source cannot be unlinked (a read-only folder) and is
    still there, the target this move made (`drop_target`: its link or copy, which holds the source's bytes) is
    removed before the error, so that a failed move leaves the file in one place only, never in both."""
    try:
        os.unlink(src)
    except OSError:
        if drop_target and os.path.lexists(src):  # a source gone meanwhile leaves `dst` its only copy: kept
            _remove(dst)
        raise


def mover_for(action: Action, mover: Optional[Mover]) -> Mover:
    """The `Mover` that finishes `action`: `mover` when it does this kind of action; otherwise (an action a
    killed run journaled with other options) one that finishes it into the folder it chose."""
    if mover is not None and mover.kind == action.kind:
        return mover
    action.relative = os.path.basename(action.dst)
    return Mover(action.kind, os.path.dirname(action.dst))


JOURNAL_COMPACT_BYTES = 1 << 20  # a journal with nothing pending is emptied past this size


class ActionJournal:
    """Intents of actions, made durable before the records that announce them and before the actions.

    One JSON line per intent (`Action` fields), one `{"done": id}` line per finished action. A kill can cut
    only the last line; an unreadable line anywhere else is an error.
    """

    def __init__(self, path: str):
        self.path = path
        self.stream = None

    def pending(self) -> list[Action]:
        """The actions journaled and not finished."""
        return self.read()[0]

    def read(self) -> tuple[list[Action], set[str]]:
        """(actions journaled and not finished, the sources of those finished) since the journal was cleared."""
        try:
            with open(self.path, "rb") as f:
                lines = f.read().split(b"\n")
        except FileNotFoundError:
            return [], set()
        intents: dict[int, Action] = {}
        finished: set[str] = set()
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line.decode("utf-8", "surrogateescape"))
                if "done" in entry:
                    if (action := intents.pop(int(entry["done"]), None)) is not None:
                        finished.add(action.src)
                else:
                    action = Action(**entry)
                    intents[action.id] = action
            except (ValueError, TypeError) as exc:
                if number == len(lines):  # a line cut by a kill: its batch was never acted on
                    continue
                raise ActionError(f"{self.path}: line {number} is not a ccscore journal entry") from exc
        return list(intents.values()), finished

    def _write(self, entries: list[dict], durable: bool) -> None:
        if self.stream is None:
            self.stream = open(self.path, "ab")
            self._drop_cut_line()
        self.stream.write(b"".join(json.dumps(e, ensure_ascii=False).encode("utf-8", "surrogateescape") + b"\n"
                                   for e in entries))
        self.stream.flush()
        if durable:
            os.fsync(self.stream.fileno())

    def _drop_cut_line(self) -> None:
        """Removes a last line a kill cut short (its batch was never acted on): appended to, it would become a
        corrupt line in the middle, and every later run would refuse the journal."""
        end = self.stream.seek(0, os.SEEK_END)
        if not end:
            return
        with open(self.path, "rb") as f:
            start = max(0, end - (1 << 20))  # far more than one entry
            f.seek(start)
            tail = f.read()
        if tail.endswith(b"\n"):
            return
        newline = tail.rfind(b"\n")
        if newline < 0 and start > 0:
            raise ActionError(f"{self.path}: its last line is not a ccscore journal entry")
        os.ftruncate(self.stream.fileno(), start + newline + 1)
        self.stream.seek(0, os.SEEK_END)

    def record_intents(self, actions: list[Action]) -> None:
        self._write([asdict(a) for a in actions], durable=True)

    def record_done(self, action: Action) -> None:
        self._write([{"done": action.id}], durable=False)  # a lost `done` only repeats an idempotent check

    def compact(self, limit: Optional[int] = None) -> None:
        """Forgets every entry once the journal has grown past `limit` bytes (JOURNAL_COMPACT_BYTES): call only
        when none is pending. A run over millions of files then keeps a journal of about one batch, not a line
        per action it ever took. (Only `pending` is read back; `act` keeps its finished entries, see its journal.)"""
        limit = JOURNAL_COMPACT_BYTES if limit is None else limit
        if self.stream is not None and self.stream.seek(0, os.SEEK_END) > limit:
            # Nothing is pending: an empty journal and the one truncated away say the same, whichever survives.
            os.ftruncate(self.stream.fileno(), 0)
            self.stream.seek(0, os.SEEK_END)

    def clear(self) -> None:
        """Forgets every entry: call only when none is pending."""
        if self.stream is not None:
            self.stream.close()
            self.stream = None
        _remove(self.path)

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None
