"""Record files: JSONL or CSV, appended batch by batch, and resumable after a crash.

Format marker: a ccscore output starts with a header line, written when the file is created: the column
names for CSV, `{"ccscore_records": 1, "labels": [...]}` for JSONL. `--resume` refuses any file that does not
start with a complete header for this model's labels, so it never cuts into a file ccscore did not write.
A new output appears with its header already complete (written under a temporary name, then linked).

Atomicity model: the records of one session run are encoded into one buffer, written with one `write`
and flushed before the next batch starts. A kill can therefore leave at most one partial record at the
end of the file; `open_output(..., resume=True)` cuts such a tail off and reports every complete record's
path, so the resumed run neither loses a finished record nor writes a path twice. Anything malformed
before the tail is refused, never cut.

Every CSV field is quoted, so a name holding a comma, quote, CR or LF round-trips; JSON escapes them.
File names are written as Python sees them; names that are not valid UTF-8 survive a round trip through
`surrogateescape`.

One writer per output: the file is locked (`flock`) while it is open, and a second run is refused.

Parquet (`--output x.parquet`, pyarrow from the `[parquet]` extra): a Parquet file cannot be appended to, and
one cut short by a kill has no footer and cannot be read. So the records go batch by batch to a CSV beside it,
`x.parquet.ccscore-records.csv` (the CSV above: header, lock, resume), and when the run ends (interrupted
too) the Parquet file is written from it under a temporary name and renamed into place; then the CSV goes.
After a kill the CSV stays, and `--resume` continues it; resuming a finished Parquet output starts a new CSV
from its rows. The columns are the CSV's, typed (`parquet_schema`), with the labels in the file's metadata.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import stat
import unicodedata
from collections import Counter
from typing import IO, Iterable, Iterator, Optional, Sequence

from .errors import CCScoreError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks here; one writer per output is then up to the user
    fcntl = None

ENCODING = "utf-8"
ERRORS = "surrogateescape"


# What a name's characters are escaped for: Unicode categories that could end a line of readable output or move a
# terminal's cursor (controls, line and paragraph separators), and the bidirectional controls and marks that would
# show a name's characters, or the rest of its line, in another order ("x\u202egnp.exe" shown as "xexe.png").
# Undecodable bytes (surrogates, category Cs) are kept: stdout prints them as the name's own bytes, stderr as \udcXX.
ESCAPED_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})
ESCAPED_BIDI = frozenset({"LRE", "RLE", "LRO", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI"})
ESCAPED_MARKS = frozenset("\u200e\u200f\u061c")  # left-to-right, right-to-left and Arabic letter marks


def _escaped(c: str) -> bool:
    return (unicodedata.category(c) in ESCAPED_CATEGORIES or c in ESCAPED_MARKS
            or unicodedata.bidirectional(c) in ESCAPED_BIDI)


def shown_path(text: str) -> str:
    """A path (or a line naming paths) as readable output prints it: its control characters, line separators and
    bidirectional controls (a line break in a file's name) escaped as Python writes them, so that each record stays
    one line and no name can pass for another line or show in another order; bytes that are no UTF-8 kept."""
    if text.isprintable():
        return text
    return "".join(repr(c)[1:-1] if _escaped(c) else c for c in text)


class OutputError(CCScoreError):
    """The output file cannot be used as asked (exists without --resume, unreadable, not ours)."""


JSONL_MARKER = "ccscore_records"
FORMAT_VERSION = 1


# Digits that carry meaning in records (JSONL and CSV; Python results keep full floats):
# - scores: 6 decimals, finer than any threshold one would set; the likeliest label takes the rounding
#   remainder, so that they still sum to 1 (it moves by at most half a unit of the last digit per label).
# - quality: 1 decimal (the estimate is good to about 4 points).
# - grid_agreement: 4 decimals (a share of at most a few hundred tile quadrants).
SCORE_DECIMALS, QUALITY_DECIMALS, AGREEMENT_DECIMALS = 6, 1, 4


def _round_scores(item: dict) -> dict:
    """A record or a tile's dict with its scores and quality rounded (see SCORE_DECIMALS)."""
    out = dict(item)
    if isinstance(out.get("scores"), dict) and out["scores"]:
        scores = {label: round(p, SCORE_DECIMALS) for label, p in out["scores"].items()}
        likeliest = max(scores, key=scores.get)
        total = sum(out["scores"].values())
        scores[likeliest] = round(total - sum(p for label, p in scores.items() if label != likeliest), SCORE_DECIMALS)
        out["scores"] = scores
    if isinstance(out.get("quality"), float):
        out["quality"] = round(out["quality"], QUALITY_DECIMALS)
    return out


def rounded(record: dict) -> dict:
    """A record as written: floats rounded to the digits that carry meaning."""
    out = _round_scores(record)
    if isinstance(out.get("grid_agreement"), dict):
        out["grid_agreement"] = {grid: None if a is None else round(a, AGREEMENT_DECIMALS)
                                 for grid, a in out["grid_agreement"].items()}
    if isinstance(out.get("tiles"), list):
        out["tiles"] = [_round_scores(tile) for tile in out["tiles"]]
    return out


def encode_jsonl(record: dict) -> bytes:
    # Strict JSON: a NaN or infinity raises here rather than reach a file that JSON readers reject.
    return (json.dumps(rounded(record), ensure_ascii=False, allow_nan=False) + "\n").encode(ENCODING, ERRORS)


def csv_columns(labels: Sequence[str]) -> list[str]:
    return ["path", "label", *[f"score_{label}" for label in labels], "quality", "width", "height", "evidence",
            "error"]


def encode_csv(rows: Sequence[Sequence]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL).writerows(rows)
    return buf.getvalue().encode(ENCODING, ERRORS)


def header_bytes(path: str, labels: Sequence[str]) -> bytes:
    """The first line of a new output: its format marker."""
    if is_csv(path):
        return encode_csv([csv_columns(labels)])
    return encode_jsonl({JSONL_MARKER: FORMAT_VERSION, "labels": list(labels)})


class JsonlWriter:
    """Writes records as JSON lines to a binary stream, one write + flush per batch."""

    def __init__(self, stream: IO[bytes]):
        self.stream = stream

    def encode(self, records: Sequence[dict]) -> bytes:
        return b"".join(encode_jsonl(r) for r in records)

    def write_batch(self, records: Sequence[dict], durable: bool = False) -> None:
        if records:
            self.stream.write(self.encode(records))
            self.stream.flush()
            if durable:
                os.fsync(self.stream.fileno())

    def close(self) -> None:
        self.stream.close()


class CsvWriter(JsonlWriter):
    """Writes records as CSV rows, every field quoted, one write + flush per batch."""

    def __init__(self, stream: IO[bytes], labels: Sequence[str]):
        super().__init__(stream)
        self.labels = list(labels)
        self.columns = csv_columns(labels)

    def row(self, record: dict) -> list:
        record = rounded(record)
        scores = record.get("scores") or {}
        quality = record.get("quality")
        return [record["path"], record.get("label", ""),
                *[("" if label not in scores else repr(float(scores[label]))) for label in self.labels],
                "" if quality is None else repr(float(quality)), record.get("width", ""), record.get("height", ""),
                record.get("evidence", ""), record.get("error", "")]

    def encode(self, records: Sequence[dict]) -> bytes:
        return encode_csv([self.row(r) for r in records])


PARQUET_RECORDS_SUFFIX = ".ccscore-records.csv"  # the records of a Parquet output until its run ends
PARQUET_ROWS_PER_GROUP = 65536
PARQUET_TEMP_INFIX = ".ccscore-new-"  # .NAME.ccscore-new-PID: a Parquet file being written


def is_parquet(path: str) -> bool:
    return os.path.splitext(path)[1].lower() == ".parquet"


def _pyarrow():
    from .shards import import_parquet

    try:
        return import_parquet()
    except ImportError as exc:  # ExtraMissing: one line with the install hint
        raise OutputError(str(exc)) from None


def parquet_schema(labels: Sequence[str]):
    """The columns of a Parquet output (ccscore's and `ccscore ray`'s): the CSV's, typed."""
    import pyarrow as pa

    _pyarrow()
    fields = [("path", pa.string()), ("label", pa.string()), *[(f"score_{label}", pa.float64()) for label in labels],
              ("quality", pa.float64()), ("width", pa.int64()), ("height", pa.int64()), ("evidence", pa.string()),
              ("error", pa.string())]
    meta = {JSONL_MARKER: str(FORMAT_VERSION), "labels": json.dumps(list(labels))}
    return pa.schema(fields, metadata=meta)


def parquet_table(rows: Sequence[Sequence], labels: Sequence[str]):
    """CSV rows (`CsvWriter.row`, or the same read back as text) -> a table of `parquet_schema`."""
    import pyarrow as pa

    schema = parquet_schema(labels)
    columns = list(zip(*rows)) if rows else [()] * len(schema)
    arrays = []
    for f, values in zip(schema, columns):
        if pa.types.is_floating(f.type):
            arrays.append([None if v in ("", None) else float(v) for v in values])
        elif pa.types.is_integer(f.type):
            arrays.append([None if v in ("", None) else int(v) for v in values])
        elif f.name == "path":  # Parquet strings are UTF-8: a name that is not keeps its bytes as \x escapes
            arrays.append([v.encode(ENCODING, ERRORS).decode(ENCODING, "backslashreplace") for v in values])
        else:
            arrays.append([v or None for v in values])
    return pa.Table.from_arrays([pa.array(a, f.type) for a, f in zip(arrays, schema)], schema=schema)


def parquet_rows(path: str, labels: Sequence[str]) -> Iterator[list]:
    """The records of a ccscore Parquet output as CSV rows; `OutputError` if it is not one for these labels."""
    pq = _pyarrow()
    try:
        f = pq.ParquetFile(path)
    except Exception as exc:
        raise _not_ours(path, f"it cannot be read as Parquet ({exc})") from None
    meta = f.schema_arrow.metadata or {}
    if meta.get(JSONL_MARKER.encode()) != str(FORMAT_VERSION).encode():
        raise _not_ours(path, "it is not a ccscore Parquet output")
    if json.loads(meta.get(b"labels", b"null")) != list(labels):
        raise _not_ours(path, f"its labels are not this model's {list(labels)}")
    for batch in f.iter_batches(batch_size=PARQUET_ROWS_PER_GROUP):
        for row in zip(*(batch.column(i).to_pylist() for i in range(batch.num_columns))):
            yield ["" if v is None else repr(v) if isinstance(v, float) else str(v) for v in row]


def write_parquet_atomically(path: str, tables: Iterable, labels: Sequence[str]) -> None:
    """Writes tables (`parquet_table`s) as one Parquet file under a temporary name, fsynced, then renamed to
    `path`: a kill leaves either no file (or the old one) or the complete new one, so a complete output is one
    that exists under its name."""
    pq = _pyarrow()
    tmp = os.path.join(os.path.dirname(path) or ".", f".{os.path.basename(path)}{PARQUET_TEMP_INFIX}{os.getpid()}")
    try:
        with pq.ParquetWriter(tmp, parquet_schema(labels)) as out:
            for table in tables:
                out.write_table(table)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def _csv_records(path: str) -> Iterator[list]:
    with open(path, encoding=ENCODING, errors=ERRORS, newline="") as f:
        rows = csv.reader(f, strict=True)
        next(rows, None)  # the header
        yield from rows


class ParquetWriter:
    """Records of a Parquet output: appended to its CSV beside it during the run, written as Parquet at
    `close` (see the module docstring)."""

    def __init__(self, records: CsvWriter, path: str):
        self.records = records
        self.path = path

    def write_batch(self, records: Sequence[dict], durable: bool = False) -> None:
        self.records.write_batch(records, durable)

    def close(self) -> None:
        try:
            self.records.stream.flush()
            labels = self.records.labels
            rows = _csv_records(self.path + PARQUET_RECORDS_SUFFIX)
            write_parquet_atomically(self.path, (parquet_table(chunk, labels)
                                                 for chunk in _chunks(rows, PARQUET_ROWS_PER_GROUP)), labels)
            os.unlink(self.path + PARQUET_RECORDS_SUFFIX)  # still locked by us until the close below
        finally:
            self.records.close()


def open_parquet_output(path: str, labels: Sequence[str], resume: bool):
    """`open_output` for a Parquet FILE: the writer, paths already done, bytes cut off the records' tail."""
    _pyarrow()
    records = path + PARQUET_RECORDS_SUFFIX
    if os.path.isdir(path):
        raise OutputError(f"--output {path} is a directory")
    if os.path.exists(path) and not os.path.isfile(path):
        raise OutputError(f"--output {path} is not a regular file: a Parquet output is renamed into place")
    if not resume and (os.path.exists(path) or os.path.exists(records)):
        left = path if os.path.exists(path) else f"{records} (the records of a run that was killed)"
        raise OutputError(f"--output {path}: {left} exists; pass --resume to continue it, or choose another file")
    if os.path.exists(path) and not os.path.exists(records):
        # A finished output resumed: its records start the CSV again (complete before it takes its name).
        tmp = os.path.join(os.path.dirname(records) or ".",
                           f".{os.path.basename(records)}{PARQUET_TEMP_INFIX}{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                f.write(header_bytes(records, labels))
                for chunk in _chunks(parquet_rows(path, labels), PARQUET_ROWS_PER_GROUP):
                    f.write(encode_csv(chunk))
                f.flush()
                os.fsync(f.fileno())
            os.link(tmp, records)
        except OSError as exc:
            raise OutputError(f"cannot write {records}: {exc.strerror or exc}") from None
        finally:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
    writer, done, cut = open_output(records, labels, resume=True)
    return ParquetWriter(writer, path), done, cut


def _chunks(items: Iterable, n: int) -> Iterator[list]:
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _lines_with_offsets(f: IO[bytes]) -> Iterator[tuple[bytes, int]]:
    """Lines of a binary file with the offset just past each one."""
    offset = 0
    for line in f:
        offset += len(line)
        yield line, offset


def _not_ours(path: str, what: str) -> OutputError:
    return OutputError(f"{path}: {what}; refusing to resume into it (not a ccscore output for this model?)")


def scan_jsonl(path: str, labels: Sequence[str]) -> tuple[Counter, int]:
    """Paths of the complete records of a JSONL output, and the offset where complete records end.

    The first line must be ccscore's header for these labels. Only the last line may be incomplete (a crash
    mid-write); anything unreadable before it is an error, since cutting it off would throw away records.
    """
    done: Counter = Counter()
    good_end = 0
    bad_line: Optional[int] = None
    with open(path, "rb") as f:
        for number, (line, end) in enumerate(_lines_with_offsets(f), 1):
            if bad_line is not None:
                raise _not_ours(path, f"line {bad_line} is not a ccscore record")
            record = None
            if line.endswith(b"\n"):
                try:
                    record = json.loads(line.decode(ENCODING, ERRORS))
                except ValueError:
                    record = None
            if number == 1:
                if not isinstance(record, dict) or record.get(JSONL_MARKER) != FORMAT_VERSION:
                    raise _not_ours(path, "it does not start with a ccscore header line")
                if record.get("labels") != list(labels):
                    raise _not_ours(path, f"its labels {record.get('labels')} are not this model's {list(labels)}")
                good_end = end
                continue
            if not isinstance(record, dict) or not isinstance(record.get("path"), str):
                if not line.strip() and line.endswith(b"\n"):
                    good_end = end  # blank line: harmless
                    continue
                bad_line = number
                continue
            done[record["path"]] += 1
            good_end = end
    if good_end == 0:
        raise _not_ours(path, "it does not start with a ccscore header line")
    return done, good_end


def scan_csv(path: str, columns: Sequence[str]) -> tuple[Counter, int]:
    """Like `scan_jsonl` for CSV: the first row must be exactly `columns`, every complete row as wide."""
    done: Counter = Counter()
    good_end = 0
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        data_lines = _lines_with_offsets(f)
        last_end = [0]
        ended_with_newline = [True]

        def text_lines() -> Iterator[str]:
            for line, end in data_lines:
                last_end[0] = end
                ended_with_newline[0] = line.endswith(b"\n")
                yield line.decode(ENCODING, ERRORS)

        rows = iter(csv.reader(text_lines(), strict=True))
        header = True
        while True:
            try:
                row = next(rows)
            except StopIteration:
                break
            except csv.Error:
                if last_end[0] < size or header:
                    raise _not_ours(path, f"it holds a malformed row near offset {good_end}") from None
                break  # a quoted field cut short by a crash: the tail goes
            complete = ended_with_newline[0] and len(row) == len(columns)
            if header:
                if not ended_with_newline[0] or list(row) != list(columns):
                    raise _not_ours(path, f"its first line is not the header {','.join(columns)}")
                header = False
            elif not complete:
                if last_end[0] < size:  # only the final row may be short or unterminated
                    raise _not_ours(path, f"a row near offset {good_end} is not a ccscore record")
                break
            else:
                done[row[0]] += 1
            good_end = last_end[0]
    if header:
        raise _not_ours(path, "it does not start with a ccscore header line")
    return done, good_end


def is_csv(path: str) -> bool:
    return os.path.splitext(path)[1].lower() == ".csv"


def scan_output(path: str, labels: Sequence[str]) -> tuple[Counter, int]:
    """(paths of complete records, offset where they end) of an existing non-empty ccscore output."""
    if is_parquet(path):  # the records of a killed run, else the finished file's (the offset means nothing)
        if os.path.exists(path + PARQUET_RECORDS_SUFFIX):
            return scan_output(path + PARQUET_RECORDS_SUFFIX, labels)
        return Counter(row[0] for row in parquet_rows(path, labels)), 0
    try:
        if is_csv(path):
            return scan_csv(path, csv_columns(labels))
        return scan_jsonl(path, labels)
    except OSError as exc:
        raise OutputError(f"cannot read --output {path}: {exc.strerror or exc}") from None


NEW_FILE_TAG = ".ccscore-new-"  # .NAME.ccscore-new-PID: a file being created by process PID


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # exists, owned by another user; or no PID at all: not ours to judge
        return True
    return True


def _remove_if_abandoned(temporary: str) -> None:
    """Removes a writer's temporary unless a process holds its lock: a writer whose PID this machine cannot see
    (another host on a shared folder, another PID namespace) still holds it."""
    try:
        fd = os.open(temporary, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return  # not ours to judge (a link, another user's file): left alone
    try:
        if hold_lock(fd):
            os.unlink(temporary)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temporaries(path: str) -> None:
    """Removes the temporaries that writers of `path` killed mid-write left (their process is gone and holds no
    lock on them), so a killed report or heatmap leaves no hidden file behind once the command runs again.
    POSIX only: Windows' os.kill would signal the process, not probe it."""
    if os.name != "posix":
        return
    folder = os.path.dirname(path) or "."
    prefix = f".{os.path.basename(path)}{NEW_FILE_TAG}"
    try:
        names = [n for n in os.listdir(folder) if n.startswith(prefix)]
    except OSError:
        return
    for name in names:
        pid = name[len(prefix):]
        if pid.isdigit() and int(pid) != os.getpid() and not _running(int(pid)):
            _remove_if_abandoned(os.path.join(folder, name))


def create_new_file(path: str, header: bytes) -> bool:
    """Creates `path` holding exactly `header` (any bytes), atomically, even where there are no hard links (a
    kill never leaves part of a report under its name); False if it exists already (it is never replaced).
    Temporaries an earlier, killed writer of `path` left are removed first."""
    from .actions import link_no_overwrite

    remove_stale_temporaries(path)
    tmp = os.path.join(os.path.dirname(path) or ".", f".{os.path.basename(path)}{NEW_FILE_TAG}{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            hold_lock(f.fileno())  # until it has its name: see _remove_if_abandoned
            f.write(header)
            f.flush()
            os.fsync(f.fileno())
            try:
                link_no_overwrite(tmp, path)
            except FileExistsError:
                return False
            return True
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def hold_lock(fd: int) -> bool:
    """Takes an exclusive lock on `fd` for as long as it is open; False when another process holds it."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        pass  # a file system without locks: nothing to enforce with
    return True


def _lock(fd: int, path: str) -> None:
    if not hold_lock(fd):
        raise OutputError(f"--output {path} is being written by another ccscore run; wait for it to end")


def open_output(path: str, labels: Sequence[str], resume: bool):
    """Opens FILE for appending records, locked. Returns (writer, paths already done, bytes cut off the tail).

    Without `resume`, an existing non-empty file is never touched: `OutputError`. With it, only a ccscore
    output for these labels is accepted. Not a regular file (/dev/stdout): written to, never resumed.
    """
    if is_parquet(path):
        return open_parquet_output(path, labels, resume)
    header = header_bytes(path, labels)
    writer_for = (lambda stream: CsvWriter(stream, labels)) if is_csv(path) else JsonlWriter
    try:
        st: Optional[os.stat_result] = os.stat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise OutputError(f"cannot use --output {path}: {exc.strerror or exc}") from None
    try:
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise OutputError(f"--output {path} is a directory")
        if st is not None and not stat.S_ISREG(st.st_mode):
            if resume:
                raise OutputError(f"--output {path} is not a regular file; it cannot be resumed")
            stream = open(path, "ab")
            try:
                stream.write(header)
                stream.flush()
            except OSError:
                stream.close()
                raise
            return writer_for(stream), Counter(), 0
        created = st is None and create_new_file(path, header)
        fd = os.open(path, os.O_RDWR | os.O_APPEND)
        try:
            _lock(fd, path)
            size = os.fstat(fd).st_size
            done: Counter = Counter()
            cut = 0
            if size == 0:  # an empty file the user made: nothing to lose
                os.write(fd, header)
            elif not created:
                if not resume:
                    raise OutputError(f"--output {path} exists and is not empty; pass --resume to continue it, "
                                      f"or choose another file")
                done, good_end = scan_output(path, labels)
                if good_end < size:
                    cut = size - good_end
                    os.ftruncate(fd, good_end)
            stream = os.fdopen(fd, "ab")
        except BaseException:
            os.close(fd)
            raise
    except OSError as exc:
        raise OutputError(f"cannot write --output {path}: {exc.strerror or exc}") from None
    return writer_for(stream), done, cut


# The fields of a record (`ScoreResult.to_dict` and error records), the only ones `RecordsFile` passes on.
RECORD_FIELDS = ("path", "label", "scores", "quality", "width", "height", "evidence", "grid_agreement", "tiles",
                 "container", "warnings", "outside", "error")


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class RecordsFile:
    """Reads a ccscore output (JSONL or CSV, with its header line) back as records, for commands that work on
    saved scores (`ccscore act`, `ccscore report`).

    `labels` comes from the header. Iterating yields each record as the score command wrote it (CSV rows
    become the same dicts: scores, quality, width, height, evidence, or error). A line that is not a record
    yields `{"path": "FILE:LINE", "error": "...", "line": LINE}`, one line, and reading goes on; a file that does not start
    with a ccscore header is an `OutputError`.
    """

    def __init__(self, path: str):
        self.path = path
        self.csv = is_csv(path)
        try:
            with open(path, "rb") as f:
                first = f.readline()
        except OSError as exc:
            raise OutputError(f"cannot read {path}: {exc.strerror or exc}") from None
        text = first.decode(ENCODING, ERRORS)
        self.labels: list[str] = []
        if self.csv:
            columns = next(csv.reader([text]), [])
            self.labels = [c[len("score_"):] for c in columns if c.startswith("score_")]
            if columns != csv_columns(self.labels):
                raise OutputError(f"{path}: it does not start with a ccscore header line (not a ccscore output?)")
            self.columns = columns
        else:
            try:
                header = json.loads(text)
            except ValueError:
                header = None
            if not isinstance(header, dict) or header.get(JSONL_MARKER) != FORMAT_VERSION \
                    or not isinstance(header.get("labels"), list):
                raise OutputError(f"{path}: it does not start with a ccscore header line (not a ccscore output?)")
            self.labels = [str(label) for label in header["labels"]]

    @staticmethod
    def checked(record) -> tuple[Optional[dict], Optional[str]]:
        """(the record with only the fields a ccscore record has, None), or (None, why it is not a record): what
        the commands read is what the score command writes (a path without NUL, finite numbers), never more."""
        if not isinstance(record, dict):
            return None, "not an object"
        path = record.get("path")
        if not isinstance(path, str) or not path or "\0" in path:
            return None, "no usable path"
        if "error" in record:
            if not isinstance(record["error"], str):
                return None, "an error that is not text"
            return {"path": path, "error": record["error"]}, None
        label, scores, quality = record.get("label"), record.get("scores"), record.get("quality")
        if not isinstance(label, str) or not isinstance(scores, dict) or not scores:
            return None, "no label and scores"
        if not all(isinstance(k, str) and _finite(v) for k, v in scores.items()) \
                or not (quality is None or _finite(quality)):
            return None, "scores and quality must be finite numbers"
        if not all(isinstance(record.get(k), int) and not isinstance(record.get(k), bool) and record[k] >= 0
                   for k in ("width", "height") if k in record):
            return None, "width and height must be whole numbers"
        if not isinstance(record.get("evidence", ""), (str, type(None))):
            return None, "evidence that is not text"
        if not isinstance(record.get("container", {}), (dict, type(None))):
            return None, "header facts (container) that are not an object"
        return {k: v for k, v in record.items() if k in RECORD_FIELDS}, None

    def _bad(self, number: int, what: str) -> dict:
        return {"path": f"{self.path}:{number}", "error": f"line {number} is not a ccscore record ({what})",
                "line": number}

    def __iter__(self) -> Iterator[dict]:
        with open(self.path, "rb") as f:
            if self.csv:
                yield from self._csv_records(f)
                return
            f.readline()
            for number, line in enumerate(f, 2):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line.decode(ENCODING, ERRORS))
                except ValueError:
                    yield self._bad(number, "not JSON")
                    continue
                record, problem = self.checked(record)
                yield record if problem is None else self._bad(number, problem)

    def _csv_records(self, f) -> Iterator[dict]:
        lines = (line.decode(ENCODING, ERRORS) for line in f)
        rows = csv.reader(lines, strict=True)
        number = 1
        try:
            next(rows)
            for number, row in enumerate(rows, 2):
                if len(row) != len(self.columns):
                    yield self._bad(number, f"{len(row)} fields, not {len(self.columns)}")
                    continue
                fields = dict(zip(self.columns, row))
                if fields["error"]:
                    record, problem = self.checked({"path": fields["path"], "error": fields["error"]})
                    yield record if problem is None else self._bad(number, problem)
                    continue
                try:
                    record = {"path": fields["path"], "label": fields["label"],
                              "scores": {label: float(fields[f"score_{label}"]) for label in self.labels},
                              "quality": float(fields["quality"]) if fields["quality"] else None,
                              "width": int(fields["width"]), "height": int(fields["height"])}
                except ValueError as exc:
                    yield self._bad(number, str(exc))
                    continue
                if fields["evidence"]:
                    record["evidence"] = fields["evidence"]
                record, problem = self.checked(record)
                yield record if problem is None else self._bad(number, problem)
        except csv.Error as exc:  # a quoted field cut short: nothing after it can be read
            yield self._bad(number + 1, str(exc))
