"""Turning command-line inputs (files, folders, list files) into a lazy stream of images to score.

- A folder is walked recursively, in sorted order, following symlinks; a directory reached twice (a symlink
  loop, two links to one folder) is walked once, and each real file (device, inode) is yielded once.
- Records name the real file: a file reached through symlinks is named by where it really lies, as the input
  folder that holds it (spelled as given) joined with its real relative path. A file that lies outside every
  input folder (reached through a symlink that leaves them) is still scored, named by its absolute real path,
  and marked `outside`: actions never touch it.
- Inside folders only image extensions count (every raster format Pillow opens); any other file is skipped and
  reported to `on_skipped`, to be counted. A folder that cannot be read is reported to `on_unreadable` (never
  skipped silently).
- A file named explicitly (on the command line or in a list) is always tried, whatever its extension,
  and is yielded every time it is named: a list is a job spec, one record per entry, duplicates included.
  Its record keeps the name as given; actions act on the file it resolves to.
- A tar shard (`.tar`) or a Parquet file (`.parquet`) named explicitly stands for the images it holds
  (ccscore.shards): each is an `InputItem` keyed `SHARD/MEMBER` whose bytes an `EncodedImage` locates.
- Nothing is held in memory but the walk's own state: a set of visited (device, inode) pairs.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import sys
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterable, Iterator, Optional, TextIO

# Every extension Pillow opens a raster image from (Pillow 13; tests check this against the installed Pillow),
# written out: asking Pillow (Image.init) costs ~0.14 s at each start. Left out: PILLOW_SKIPPED.
IMAGE_EXTENSIONS = frozenset({
    ".png", ".apng", ".jpg", ".jpeg", ".jpe", ".jfif", ".webp", ".avif", ".avifs", ".bmp", ".dib", ".gif",
    ".tif", ".tiff", ".tga", ".icb", ".vda", ".vst", ".jp2", ".j2k", ".jpc", ".jpf", ".jpx", ".j2c", ".ppm",
    ".pgm", ".pbm", ".pnm", ".pfm", ".pcx", ".dcx", ".ico", ".cur", ".icns", ".dds", ".qoi", ".psd", ".sgi",
    ".rgb", ".rgba", ".bw", ".ras", ".xbm", ".xpm", ".im", ".msp", ".pcd", ".pxr", ".blp", ".ftc", ".ftu",
    ".gbr", ".fli", ".flc", ".fit", ".fits",
    ".jxl",  # JPEG XL: decoded through the optional pillow-jxl-plugin (the [jxl] extra); without it, a clear error
})
# Formats Pillow lists but cannot decode by itself: EPS needs Ghostscript, WMF/EMF are vector and Windows-only,
# MPEG and IPTC are only identified, BUFR/GRIB/HDF5 are stubs needing an outside handler.
PILLOW_SKIPPED = frozenset({"EPS", "WMF", "MPEG", "IPTC", "BUFR", "GRIB", "HDF5"})
# Errors that mean "nothing there", not "cannot read": a dangling link, a file that vanished, a symlink loop.
_ABSENT = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP})


@dataclass(frozen=True)
class EncodedImage:
    """An image file's bytes that are not a file of their own: a tar shard's member (read in place, by offset,
    in the decoding process) or a Parquet cell (`data`, carried along). `name` is the record's key.
    `error`: why the container could not be read (the record's error; nothing to decode)."""

    name: str
    data: Optional[bytes] = field(default=None, repr=False)
    container: Optional[str] = None
    offset: int = 0
    size: int = 0
    error: Optional[str] = None

    def open(self) -> BinaryIO:
        """A seekable binary stream over the bytes (raises OSError when the container cannot be read)."""
        if self.data is not None:
            return io.BytesIO(self.data)
        f = open(self.container, "rb")
        return io.BufferedReader(_Window(f, self.offset, self.size))


class _Window(io.RawIOBase):
    """The `size` bytes at `offset` of an open file, as a file of their own: a member is never read whole
    into memory, and never past its end into the next member."""

    def __init__(self, f: BinaryIO, offset: int, size: int):
        self._f, self._start, self._size, self._pos = f, offset, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + pos)
        return self._pos

    def readinto(self, buffer) -> int:
        want = min(len(buffer), self._size - self._pos)
        if want <= 0:
            return 0
        self._f.seek(self._start + self._pos)
        got = self._f.readinto(memoryview(buffer)[:want])
        self._pos += got
        return got

    def close(self) -> None:
        self._f.close()
        super().close()


@dataclass(frozen=True)
class InputItem:
    path: str  # as the record will show it (see the module docstring)
    root: Optional[str] = None  # the input folder that holds the real file; None for a file named explicitly
    real: Optional[str] = None  # the resolved file actions act on (None: `path` itself)
    outside: bool = False  # lies outside every input folder: scored, never acted on
    embedded: Optional[EncodedImage] = None  # an image inside a shard: scored, never acted on

    @property
    def decode_source(self):
        """What a decoding process opens: the path, or the `EncodedImage` of a shard's member."""
        return self.embedded or self.path

    @property
    def relative(self) -> str:
        """Path relative to its input folder (the file name for explicit files): the layout actions keep."""
        if self.root is None:
            return os.path.basename(self.path) or self.path
        return os.path.relpath(self.path, self.root)

    @property
    def source(self) -> str:
        return self.real or self.path


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


SHARD_EXTENSIONS = (".tar", ".parquet")  # read as containers of images, not as images (ccscore.shards)


def is_shard_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in SHARD_EXTENSIONS


def is_within(path: str, folder: str) -> bool:
    """Whether real path `path` is `folder` or lies below it (both resolved)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


class _Walker:
    """Walks input folders; shared state so that a file or folder reached twice, from any input, counts once."""

    def __init__(self, roots: Iterable[str], exclude: frozenset, on_unreadable: Optional[Callable[[str, str], None]],
                 on_skipped: Optional[Callable[[str], None]] = None):
        self.roots: list[tuple[str, str]] = []  # (as given, real), for naming files reached through symlinks
        for root in roots:
            self.add_root(root)
        self.exclude = exclude
        self.on_unreadable = on_unreadable
        self.on_skipped = on_skipped
        self.seen_dirs: set = set()
        self.seen_files: set = set()

    def add_root(self, root: str) -> None:
        real = os.path.realpath(root)
        if all(r != real for _, r in self.roots):
            self.roots.append((root, real))

    def _unreadable(self, path: str, exc: OSError) -> None:
        if exc.errno in _ABSENT:
            return
        if self.on_unreadable is not None:
            self.on_unreadable(path, exc.strerror or str(exc))

    def _item(self, real: str, root: str, real_root: str) -> InputItem:
        if is_within(real, real_root):
            return InputItem(os.path.join(root, os.path.relpath(real, real_root)), root, real)
        for other, other_real in self.roots:
            if is_within(real, other_real):
                return InputItem(os.path.join(other, os.path.relpath(real, other_real)), other, real)
        return InputItem(real, None, real, outside=True)

    def walk(self, root: str) -> Iterator[InputItem]:
        """Depth-first, sorted, streaming walk; never enters a directory twice, never yields a real file twice."""
        self.add_root(root)
        real_root = os.path.realpath(root)
        if real_root in self.exclude:
            return
        stack = [(root, real_root)]  # (folder as walked, its real path): one realpath per folder, not per file
        while stack:
            folder, real_folder = stack.pop()
            try:
                st = os.stat(folder)
            except OSError as exc:
                self._unreadable(folder, exc)
                continue
            key = (st.st_dev, st.st_ino)
            if key in self.seen_dirs:
                continue
            self.seen_dirs.add(key)
            try:
                with os.scandir(folder) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as exc:
                self._unreadable(folder, exc)
                continue
            subdirs = []
            for entry in entries:
                try:
                    link = entry.is_symlink()
                    if entry.is_dir(follow_symlinks=True):
                        real = os.path.realpath(entry.path) if link else os.path.join(real_folder, entry.name)
                        if real not in self.exclude:
                            subdirs.append((entry.path, real))
                        continue
                    if not entry.is_file(follow_symlinks=True):
                        continue
                    if not is_image_name(entry.name):
                        if self.on_skipped is not None:
                            self.on_skipped(entry.path)
                        continue
                    est = entry.stat(follow_symlinks=True)
                except OSError as exc:
                    self._unreadable(entry.path, exc)
                    continue
                fkey = (est.st_dev, est.st_ino)
                if fkey in self.seen_files:
                    continue
                self.seen_files.add(fkey)
                real = os.path.realpath(entry.path) if link else os.path.join(real_folder, entry.name)
                yield self._item(real, root, real_root)
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


def iter_inputs(paths: Iterable[str], from_list: Optional[str] = None, exclude_dirs: Iterable[str] = (),
                on_unreadable: Optional[Callable[[str, str], None]] = None,
                on_skipped: Optional[Callable[[str], None]] = None,
                image_column: Optional[str] = None, key_column: Optional[str] = None) -> Iterator[InputItem]:
    """Every image to score, lazily, in a deterministic order: command-line paths first, then list entries.

    exclude_dirs: folders never walked into (an action's destination inside an input folder).
    on_unreadable(path, reason): called for each folder (or entry) that exists but cannot be read.
    on_skipped(path): called for each file in a folder, or member of a tar shard, that is not an image by its
        extension.
    image_column, key_column: of Parquet inputs (ccscore.shards.iter_parquet).
    """
    paths = [os.fspath(p) for p in paths]
    walker = _Walker([p for p in paths if os.path.isdir(p)], frozenset(os.path.realpath(d) for d in exclude_dirs),
                     on_unreadable, on_skipped)

    def expand(path: str) -> Iterator[InputItem]:
        if os.path.isdir(path):
            yield from walker.walk(path)
        elif is_shard_name(path):
            from .shards import iter_shard

            yield from iter_shard(path, on_skipped, image_column, key_column)
        else:  # always tried; a missing file becomes an error record
            yield InputItem(path, None, os.path.realpath(path))

    for path in paths:
        yield from expand(path)
    if from_list is not None:
        for entry in read_list(from_list):
            yield from expand(entry)
