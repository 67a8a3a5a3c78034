"""Images inside containers: WebDataset tar shards and Parquet files (as img2dataset writes them).

- A tar shard (`.tar`, uncompressed: members are read in place by offset) stands for its image members, in
  the order they lie in the shard, each keyed `SHARD/MEMBER` (SHARD as given). Members that are not images
  by their extension (`.txt`, `.json`, `.cls` in the WebDataset layout) are skipped and counted.
- A Parquet file stands for its rows; `image_column` holds the encoded bytes (binary, or a struct with a
  `bytes` field as Hugging Face datasets write it; default: the file's only such column). Each row is keyed
  `FILE/KEY`, KEY from `key_column` (default: `key` when the file has it, as img2dataset writes) or else the
  row number. Rows are read a small batch at a time.
- The bytes are decoded in the decoding processes like any file (ccscore.images, with every limit); a
  container that cannot be read becomes one error record keyed by its own name, and the run goes on.

pyarrow (extra `[parquet]`) is imported only when a Parquet file is read.
"""

from __future__ import annotations

import os
import stat
import tarfile
from typing import Callable, Iterator, Optional

from .errors import import_extra, one_line
from .inputs import EncodedImage, InputItem, is_image_name

PARQUET_BATCH_ROWS = 64  # rows read at a time: their bytes are held until decoded
DEFAULT_KEY_COLUMN = "key"


def import_parquet():
    """pyarrow.parquet, or `ExtraMissing` with the install hint."""
    return import_extra("pyarrow.parquet", "parquet", "reading or writing Parquet")


def _broken(name: str, what: str, exc: BaseException) -> InputItem:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else one_line(exc)
    return InputItem(name, embedded=EncodedImage(name, error=f"cannot read {what}: {reason}"))


def iter_tar(shard: str, on_skipped: Optional[Callable[[str], None]] = None) -> Iterator[InputItem]:
    """The image members of a tar shard, as `InputItem`s keyed SHARD/MEMBER (see the module docstring)."""
    try:
        with tarfile.open(shard, "r:") as tar:  # "r:": offsets are only meaningful in an uncompressed tar
            for member in tar:
                tar.members.clear()  # a shard of millions of members: keep none of them
                if not member.isfile():
                    continue
                key = f"{shard}/{member.name}"
                if not is_image_name(member.name):
                    if on_skipped is not None:
                        on_skipped(key)
                    continue
                yield InputItem(key, embedded=EncodedImage(key, container=shard, offset=member.offset_data,
                                                           size=member.size))
    except (OSError, tarfile.TarError) as exc:  # missing, unreadable, not a tar, cut short
        yield _broken(shard, "tar shard", exc)


def image_column_of(schema, wanted: Optional[str]) -> str:
    """The column holding encoded images: `wanted`, or the only binary (or struct-with-bytes) column."""
    import pyarrow as pa

    def holds_bytes(field) -> bool:
        t = field.type
        return (pa.types.is_binary(t) or pa.types.is_large_binary(t)
                or (pa.types.is_struct(t) and any(t.field(i).name == "bytes" for i in range(t.num_fields))))

    if wanted is not None:
        if wanted not in schema.names:
            raise ValueError(f"no column {wanted!r} (columns: {', '.join(schema.names)})")
        if not holds_bytes(schema.field(wanted)):
            raise ValueError(f"column {wanted!r} holds {schema.field(wanted).type}, not image bytes")
        return wanted
    candidates = [f.name for f in schema if holds_bytes(f)]
    if len(candidates) != 1:
        found = ", ".join(candidates) if candidates else "none"
        raise ValueError(f"name the column of image bytes with --image-column (binary columns: {found})")
    return candidates[0]


def iter_parquet(path: str, image_column: Optional[str] = None,
                 key_column: Optional[str] = None) -> Iterator[InputItem]:
    """The rows of a Parquet file as `InputItem`s keyed FILE/KEY (see the module docstring)."""
    try:
        f = import_parquet().ParquetFile(path)
        column = image_column_of(f.schema_arrow, image_column)
        names = f.schema_arrow.names
        if key_column is not None and key_column not in names:
            raise ValueError(f"no key column {key_column!r} (columns: {', '.join(names)})")
        key = key_column or (DEFAULT_KEY_COLUMN if DEFAULT_KEY_COLUMN in names else None)
        row = 0
        for batch in f.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=[column] + ([key] if key else [])):
            cells = batch.column(0).to_pylist()
            keys = batch.column(1).to_pylist() if key else range(row, row + len(cells))
            for cell, k in zip(cells, keys):
                name = f"{path}/{k if k is not None else row}"
                data = cell.get("bytes") if isinstance(cell, dict) else cell
                row += 1
                if data is None:
                    yield InputItem(name, embedded=EncodedImage(name, error="no image bytes in this row (null)"))
                else:
                    yield InputItem(name, embedded=EncodedImage(name, data=bytes(data)))
    except Exception as exc:  # no pyarrow, missing, not Parquet, a bad column, a corrupt page: many types
        yield _broken(path, "Parquet file", exc)


def iter_shard(path: str, on_skipped: Optional[Callable[[str], None]] = None, image_column: Optional[str] = None,
               key_column: Optional[str] = None) -> Iterator[InputItem]:
    """The images of a tar shard or a Parquet file, by its extension. Only a regular file is opened: a FIFO
    or a device named `x.tar` would block or never end."""
    try:
        regular = stat.S_ISREG(os.stat(path).st_mode)
    except OSError as exc:
        return iter([_broken(path, "shard", exc)])
    if not regular:
        return iter([InputItem(path, embedded=EncodedImage(path, error="not a regular file"))])
    if os.path.splitext(path)[1].lower() == ".parquet":
        return iter_parquet(path, image_column, key_column)
    return iter_tar(path, on_skipped)
