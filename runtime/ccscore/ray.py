"""Scoring with Ray Data (extra `[ray]`): a callable class for `Dataset.map_batches`, and the pieces of
`ccscore ray` (ccscore.cli.ray).

    import ray, ccscore.ray
    ds = ray.data.read_parquet("s3://bucket/laion-part/")           # a key column and encoded image bytes
    scored = ds.map_batches(ccscore.ray.Scorer, fn_constructor_kwargs={"image_column": "jpg"},
                            compute=ray.data.ActorPoolStrategy(size=4), num_cpus=1,
                            batch_format="pyarrow")                  # or num_gpus=1, "device": "cuda"
    scored.write_parquet("scores/")

Each actor holds one onnxruntime session and a pool of worker processes (ccscore.pipeline; on CPU, where they
outnumber the session's threads, each also scores with its own one-thread session): the bytes are decoded with
every limit of the command line (--max-pixels, the per-file time limit, a crashing decoder costs that image an
error record), so one hostile image never takes an actor down. A batch's rows come back in order as the columns
of a Parquet output (`ccscore.outputs.parquet_schema`: path = the key, label, score_LABEL..., quality, width,
height, evidence, error), plus the batch's other columns passed through.

This module is `ccscore.ray`; `import ray` inside it is the Ray package (imports are absolute).
"""

from __future__ import annotations

from typing import Any, Optional

from .errors import import_extra
from .inputs import EncodedImage, InputItem

KEY_COLUMN, IMAGE_COLUMN, ERROR_COLUMN = "key", "image", "error"


def import_ray():
    """The `ray` package with Ray Data, or `ExtraMissing` with the install hint."""
    ray = import_extra("ray", "ray", "ccscore ray")
    import_extra("ray.data", "ray", "ccscore ray")
    import_extra("pyarrow", "ray", "ccscore ray")
    return ray


class Scorer:
    """For `Dataset.map_batches`: scores a batch's encoded images, returns their records as columns.

    key_column / image_column: the batch's columns holding each row's key (its record's `path`) and its
    encoded image bytes (a null image is an error record; so is a row whose `error` column is set, for readers
    that could not read an image). model, device, threshold, aggregate, max_tiles, max_pixels, all_tiles: as
    `ccscore.Scorer`. decode_workers: worker processes of this actor, which decode and on CPU score (default: the
    cores of its machine); file_timeout: seconds one image may take its worker (None: no limit).
    """

    def __init__(self, model: Optional[str] = None, device: str = "cpu", key_column: str = KEY_COLUMN,
                 image_column: str = IMAGE_COLUMN, decode_workers: Optional[int] = None, file_timeout: Optional[float] = 60.0,
                 batch_tiles: int = 8, **options: Any):
        from .blas import limit_blas_threads
        from .pipeline import start_workers
        from .scorer import Scorer as SessionScorer

        limit_blas_threads(1)  # an actor that only scores: numpy's BLAS threads would spin beside the session's

        self.key_column, self.image_column = key_column, image_column
        self.batch_tiles = batch_tiles
        import os

        self.workers = max(1, decode_workers or os.cpu_count() or 1)
        # Before the session: they start (and on CPU build theirs) while it loads.
        self.pool = start_workers(self.workers, file_timeout, model, device, options.get("intra_op_threads"))
        try:
            self.scorer = SessionScorer(model, device=device, batch_size=batch_tiles, file_timeout=file_timeout,
                                        **options)
        except BaseException:
            self.pool.close()
            raise

    @property
    def labels(self) -> tuple[str, ...]:
        return self.scorer.labels

    def score_items(self, items: list[InputItem]) -> list[dict]:
        """Records of `InputItem`s (files or `EncodedImage`s), in order, each as the command line writes it."""
        from .pipeline import run_pipeline

        records: list[dict] = []
        run_pipeline(self.scorer, items, self.workers, self.batch_tiles,
                     lambda pairs: records.extend(r for _, r in pairs), pool=self.pool, keep_pool=True)
        return records

    def __call__(self, batch):
        import pyarrow as pa

        table = batch if isinstance(batch, pa.Table) else pa.Table.from_pydict(
            {k: list(v) for k, v in batch.items()})
        keys = [str(k) for k in table.column(self.key_column).to_pylist()]
        images = table.column(self.image_column).to_pylist()
        errors = (table.column(ERROR_COLUMN).to_pylist() if ERROR_COLUMN in table.column_names
                  else [None] * len(keys))
        items = []
        for key, data, error in zip(keys, images, errors):
            if isinstance(data, dict):  # Hugging Face's image struct
                data = data.get("bytes")
            if error is None and data is None:
                error = "no image bytes in this row (null)"
            items.append(InputItem(key, embedded=EncodedImage(key, data=None if error else bytes(data),
                                                              error=error)))
        out = records_table(self.score_items(items), self.labels)
        for name in table.column_names:  # the rest of the batch rides along (a shard's name, a caption...)
            if name not in (self.key_column, self.image_column, ERROR_COLUMN) and name not in out.column_names:
                out = out.append_column(name, table.column(name))
        return out

    def __del__(self):
        pool = getattr(self, "pool", None)
        if pool is not None:
            pool.close()


def records_table(records: list[dict], labels):
    """Records -> a table of the Parquet output's columns (`ccscore.outputs.parquet_schema`)."""
    from .outputs import CsvWriter, parquet_table

    writer = CsvWriter(None, labels)
    return parquet_table([writer.row(r) for r in records], labels)


def unit_rows(unit: dict, image_column: Optional[str] = None, key_column: Optional[str] = None):
    """The rows of one input unit (a tar shard, a Parquet file, or a list of files of a folder), read where
    the task runs: {"unit", "key", "image" (bytes or None), "error" (None, or why the image cannot be read)}.
    Keys are those of the command line (ccscore.inputs, ccscore.shards)."""
    from .errors import one_line, without_path
    from .images import open_regular_file
    from .shards import iter_shard

    if unit["files"] is not None:
        items = (InputItem(path, real=source) for path, source in unit["files"])
    else:
        items = iter_shard(unit["source"], None, image_column, key_column)
    for item in items:
        data, error = None, None
        try:
            if item.embedded is None:  # a file of a folder: never a FIFO or a device (the open cannot block)
                with open_regular_file(item.source) as f:
                    data = f.read()
            elif item.embedded.error is not None:
                error = item.embedded.error
            elif item.embedded.data is not None:
                data = item.embedded.data
            else:
                with item.embedded.open() as f:
                    data = f.read()
        except Exception as exc:  # the record says why, as the command line would
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else one_line(exc)
            error = without_path(without_path(reason, item.source), item.path)
        yield {"unit": unit["name"], KEY_COLUMN: item.path, IMAGE_COLUMN: data, ERROR_COLUMN: error}
