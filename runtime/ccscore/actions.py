"""Acting on decisions: copy, symlink or move selected images into a folder, keeping their relative layout.

Rules: never overwrite, never merge two different sources under one name (a `-1`, `-2`... suffix goes
before the extension), never touch a source except to move it. An action whose target already holds the
same thing (the same bytes for a copy, a link to the same source) counts as done, so a run that was
killed and resumed does not leave duplicates behind.
"""

from __future__ import annotations

import errno
import filecmp
import os
import shutil
from typing import Optional

KINDS = ("copy", "symlink", "move")
VERBS = {"copy": "copy", "symlink": "link", "move": "move"}
PAST_TENSE = {"copy": "copied", "symlink": "linked", "move": "moved"}


class ActionError(Exception):
    pass


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


def _same_file_content(a: str, b: str) -> bool:
    try:
        return os.path.isfile(b) and not os.path.islink(b) and filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False


def _copy_exclusive(src: str, dst: str) -> None:
    """Copies bytes and times into a file that must not exist yet (O_EXCL: no race, no overwrite)."""
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with open(src, "rb") as fsrc, os.fdopen(fd, "wb") as fdst:
            fd = -1
            shutil.copyfileobj(fsrc, fdst, 1 << 20)
        shutil.copystat(src, dst, follow_symlinks=True)
    except BaseException:
        if fd != -1:
            os.close(fd)
        try:
            os.unlink(dst)
        except OSError:
            pass
        raise


class Mover:
    """Carries out one kind of action into `dest`, or only says what it would do (`dry_run`)."""

    def __init__(self, kind: str, dest: str, dry_run: bool = False):
        if kind not in KINDS:
            raise ValueError(f"unknown action {kind!r}")
        self.kind = kind
        self.dest = dest
        self.dry_run = dry_run
        self.claimed: set[str] = set()  # targets this run has planned (dry runs create nothing on disk)
        self.done = 0

    def target_for(self, src: str, relative: str) -> tuple[str, bool]:
        """(target path, already done): the first free name, or one that already holds this source."""
        base = os.path.join(self.dest, _safe_relative(relative))
        for candidate in _candidates(base):
            if candidate in self.claimed:
                continue
            if os.path.lexists(candidate):
                if self.kind == "symlink" and os.path.islink(candidate) and \
                        os.readlink(candidate) == os.path.abspath(src):
                    return candidate, True
                if self.kind == "copy" and _same_file_content(src, candidate):
                    return candidate, True
                continue
            return candidate, False
        raise AssertionError("unreachable")

    def apply(self, src: str, relative: str) -> Optional[str]:
        """Acts on one source; returns a one-line description, or raises `ActionError`."""
        for _attempt in range(100):
            target, done = self.target_for(src, relative)
            self.claimed.add(target)
            if done:
                return f"{VERBS[self.kind]} {src} -> {target} (already there)"
            if self.dry_run:
                return f"would {VERBS[self.kind]} {src} -> {target}"
            try:
                os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
                if self.kind == "copy":
                    _copy_exclusive(src, target)
                elif self.kind == "symlink":
                    os.symlink(os.path.abspath(src), target)
                else:
                    self._move(src, target)
            except FileExistsError:
                continue  # someone took the name between the check and the act: try the next one
            except OSError as exc:
                raise ActionError(f"cannot {VERBS[self.kind]} {src} -> {target}: {exc.strerror or exc}") from None
            self.done += 1
            return f"{VERBS[self.kind]} {src} -> {target}"
        raise ActionError(f"cannot find a free name for {src} in {self.dest}")

    @staticmethod
    def _move(src: str, target: str) -> None:
        try:
            os.link(src, target)  # fails if target exists: no overwrite, even under a race
        except OSError as exc:
            if exc.errno == errno.EEXIST:
                raise FileExistsError(target) from None
            # Another filesystem, or no hard links: copy exclusively, then remove the source.
            _copy_exclusive(src, target)
        os.unlink(src)
