"""Turning command-line inputs (files, folders, list files) into a lazy stream of images to score.

- A folder is walked recursively, in sorted order, following symlinks; a directory reached twice (a symlink
  loop, two links to one folder) is walked once, and each real file (device, inode) is yielded once.
- Inside folders only image extensions count; anything else is skipped silently.
- A file named explicitly (on the command line or in a list) is always tried, whatever its extension,
  and is yielded every time it is named: a list is a job spec, one record per entry, duplicates included.
- Nothing is held in memory but the walk's own state: a set of visited (device, inode) pairs.
"""

from __future__ import annotations

import contextlib

import os
import sys
from dataclasses import dataclass
from typing import Iterable, Iterator, Optional, TextIO

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".avif"})


@dataclass(frozen=True)
class InputItem:
    path: str  # as the record will show it: the folder as given joined with the walked relative path
    root: Optional[str] = None  # the input folder it came from; None for a file named explicitly

    @property
    def relative(self) -> str:
        """Path relative to its input folder (the file name for explicit files): the layout actions keep."""
        if self.root is None:
            return os.path.basename(self.path) or self.path
        return os.path.relpath(self.path, self.root)


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _walk(root: str, seen_dirs: set, seen_files: set, exclude: frozenset = frozenset()) -> Iterator[InputItem]:
    """Depth-first, sorted, streaming walk; never enters a directory twice, never yields a real file twice."""
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            st = os.stat(folder)
        except OSError:
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen_dirs:
            continue
        seen_dirs.add(key)
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue  # unreadable folder: nothing to score in it
        subdirs = []
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=True):
                    if not exclude or os.path.realpath(entry.path) not in exclude:
                        subdirs.append(entry.path)
                    continue
                if not is_image_name(entry.name) or not entry.is_file(follow_symlinks=True):
                    continue
                est = entry.stat(follow_symlinks=True)
            except OSError:
                continue  # dangling symlink, vanished file
            fkey = (est.st_dev, est.st_ino)
            if fkey in seen_files:
                continue
            seen_files.add(fkey)
            yield InputItem(entry.path, root)
        stack.extend(reversed(subdirs))  # sorted order: first subfolder is walked first


def read_list(source: str, stdin: Optional[TextIO] = None) -> Iterator[str]:
    """Entries of a list file (`-` = stdin), one path a line; blank lines skipped; read lazily."""
    with contextlib.ExitStack() as stack:
        if source == "-":
            stream = stdin if stdin is not None else sys.stdin
        else:
            stream = stack.enter_context(open(source, encoding="utf-8", errors="surrogateescape"))
        for line in stream:
            entry = line.rstrip("\r\n")
            if entry.strip():
                yield entry


def iter_inputs(paths: Iterable[str], from_list: Optional[str] = None,
                exclude_dirs: Iterable[str] = ()) -> Iterator[InputItem]:
    """Every image to score, lazily, in a deterministic order: command-line paths first, then list entries.

    exclude_dirs: folders never walked into (an action's destination inside an input folder).
    """
    exclude = frozenset(os.path.realpath(d) for d in exclude_dirs)
    seen_dirs: set = set()
    seen_files: set = set()

    def expand(path: str) -> Iterator[InputItem]:
        if os.path.isdir(path):
            yield from _walk(path, seen_dirs, seen_files, exclude)
        else:
            yield InputItem(path)  # always tried; a missing file becomes an error record

    for path in paths:
        yield from expand(os.fspath(path))
    if from_list is not None:
        for entry in read_list(from_list):
            yield from expand(entry)
