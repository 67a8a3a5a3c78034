"""Record files: JSONL or CSV, appended batch by batch, and resumable after a crash.

Atomicity model: the records of one session run are encoded into one buffer, written with one `write`
and flushed before the next batch starts. A kill can therefore leave at most one partial record at the
end of the file; `open_output(..., resume=True)` cuts such a tail off and reports every complete record's
path, so the resumed run neither loses a finished record nor writes a path twice.

File names are written as Python sees them; names that are not valid UTF-8 survive a round trip through
`surrogateescape`.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter
from typing import IO, Iterator, Optional, Sequence

from .errors import CCScoreError

ENCODING = "utf-8"
ERRORS = "surrogateescape"


class OutputError(CCScoreError):
    """The output file cannot be used as asked (exists without --resume, unreadable, not ours)."""


def encode_jsonl(record: dict) -> bytes:
    # Strict JSON: a NaN or infinity raises here rather than reach a file that JSON readers reject.
    return (json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n").encode(ENCODING, ERRORS)


class JsonlWriter:
    """Writes records as JSON lines to a binary stream, one write + flush per batch."""

    def __init__(self, stream: IO[bytes]):
        self.stream = stream

    def write_batch(self, records: Sequence[dict]) -> None:
        if records:
            self.stream.write(b"".join(encode_jsonl(r) for r in records))
            self.stream.flush()

    def close(self) -> None:
        self.stream.close()


def csv_columns(labels: Sequence[str]) -> list[str]:
    return ["path", "label", *[f"score_{label}" for label in labels], "quality", "width", "height", "evidence",
            "error"]


class CsvWriter:
    """Writes records as CSV rows (header written when the file is empty), one write + flush per batch."""

    def __init__(self, stream: IO[bytes], labels: Sequence[str], write_header: bool):
        self.stream = stream
        self.labels = list(labels)
        self.columns = csv_columns(labels)
        if write_header:
            self._write_rows([self.columns])

    def _write_rows(self, rows: list[list]) -> None:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerows(rows)
        self.stream.write(buf.getvalue().encode(ENCODING, ERRORS))
        self.stream.flush()

    def row(self, record: dict) -> list:
        scores = record.get("scores") or {}
        quality = record.get("quality")
        return [record["path"], record.get("label", ""),
                *[("" if label not in scores else repr(float(scores[label]))) for label in self.labels],
                "" if quality is None else repr(float(quality)), record.get("width", ""), record.get("height", ""),
                record.get("evidence", ""), record.get("error", "")]

    def write_batch(self, records: Sequence[dict]) -> None:
        if records:
            self._write_rows([self.row(r) for r in records])

    def close(self) -> None:
        self.stream.close()


def _lines_with_offsets(f: IO[bytes]) -> Iterator[tuple[bytes, int]]:
    """Lines of a binary file with the offset just past each one."""
    offset = 0
    for line in f:
        offset += len(line)
        yield line, offset


def scan_jsonl(path: str) -> tuple[Counter, int]:
    """Paths of the complete records of a JSONL file, and the offset where complete records end.

    Only the last line may be incomplete (a crash mid-write); anything unreadable before it is an error,
    since cutting it off would throw away records the user may want.
    """
    done: Counter = Counter()
    good_end = 0
    bad_line: Optional[int] = None
    with open(path, "rb") as f:
        for number, (line, end) in enumerate(_lines_with_offsets(f), 1):
            if bad_line is not None:
                raise OutputError(f"{path}: line {bad_line} is not a ccscore record; refusing to resume into it")
            record = None
            if line.endswith(b"\n"):
                try:
                    record = json.loads(line.decode(ENCODING, ERRORS))
                except ValueError:
                    record = None
            if not isinstance(record, dict) or not isinstance(record.get("path"), str):
                if not line.strip() and line.endswith(b"\n"):
                    good_end = end  # blank line: harmless
                    continue
                bad_line = number
                continue
            done[record["path"]] += 1
            good_end = end
    return done, good_end


def scan_csv(path: str, columns: Sequence[str]) -> tuple[Counter, int, bool]:
    """Like `scan_jsonl` for CSV: (paths done, offset where complete rows end, header present)."""
    done: Counter = Counter()
    good_end = 0
    header_seen = False
    with open(path, "rb") as f:
        data_lines = _lines_with_offsets(f)
        last_end = [0]
        ended_with_newline = [True]

        def text_lines() -> Iterator[str]:
            for line, end in data_lines:
                last_end[0] = end
                ended_with_newline[0] = line.endswith(b"\n")
                yield line.decode(ENCODING, ERRORS)

        reader = csv.reader(text_lines(), strict=True)
        rows = iter(reader)
        while True:
            try:
                row = next(rows)
            except StopIteration:
                break
            except csv.Error:
                break  # a quoted field cut short by a crash: the tail goes
            complete = ended_with_newline[0]
            if not header_seen:
                if list(row) != list(columns):
                    if complete or len(row) >= len(columns):
                        raise OutputError(f"{path}: its CSV header does not match this model's labels "
                                          f"({','.join(columns)}); refusing to resume into it")
                    break
                header_seen = complete
                if complete:
                    good_end = last_end[0]
                continue
            if not complete or len(row) != len(columns):
                # Only the final row may be short or unterminated; anything earlier is not ours.
                try:
                    next(rows)
                except (StopIteration, csv.Error):
                    break
                raise OutputError(f"{path}: a row near offset {good_end} is not a ccscore record; "
                                  f"refusing to resume into it")
            done[row[0]] += 1
            good_end = last_end[0]
    return done, good_end, header_seen


def is_csv(path: str) -> bool:
    return os.path.splitext(path)[1].lower() == ".csv"


def open_output(path: str, labels: Sequence[str], resume: bool):
    """Opens FILE for appending records. Returns (writer, paths already done, bytes cut off the tail).

    Without `resume`, an existing non-empty file is never touched: `OutputError`.
    """
    exists = os.path.exists(path)
    if os.path.isdir(path):
        raise OutputError(f"--output {path} is a directory")
    size = os.path.getsize(path) if exists else 0
    if size and not resume:
        raise OutputError(f"--output {path} exists and is not empty; pass --resume to continue it, "
                          f"or choose another file")
    done: Counter = Counter()
    cut = 0
    header = False
    if size:
        try:
            if is_csv(path):
                done, good_end, header = scan_csv(path, csv_columns(labels))
            else:
                done, good_end = scan_jsonl(path)
        except OSError as exc:
            raise OutputError(f"cannot read --output {path}: {exc.strerror or exc}") from None
        if good_end < size:
            cut = size - good_end
            with open(path, "r+b") as f:
                f.truncate(good_end)
    try:
        stream = open(path, "ab")
    except OSError as exc:
        raise OutputError(f"cannot open --output {path}: {exc.strerror or exc}") from None
    if is_csv(path):
        return CsvWriter(stream, labels, write_header=not header), done, cut
    return JsonlWriter(stream), done, cut
