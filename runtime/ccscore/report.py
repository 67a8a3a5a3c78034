"""The HTML report of a run: one self-contained file (inline CSS, JS, data and thumbnails) that opens from
file:// with no network.

Each record becomes one entry: path, label, P(lossy), quality, file size, dimensions, evidence, a small WebP
thumbnail as a data URI, and, where computed, the image's heatmap cells (`heatmap.Heatmap.cells`, the same
colours as `ccscore heatmap`). The page (report_template.html) draws only the rows in view, so 10,000 entries
stay responsive; the large view shows the original file (a file:// link, for formats a browser displays)
under its heatmap.
"""

from __future__ import annotations

import base64
import io
import json
import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from .heatmap import CODEC_COLOURS, OTHER_COLOUR, cell_alpha

if TYPE_CHECKING:
    from .scorer import Scorer

TEMPLATE = Path(__file__).with_name("report_template.html")
DATA_MARKER = "/*CCSCORE_REPORT_DATA*/"
THUMB_SIDE = 80  # px, long side of a thumbnail: ~1-3 kB each as WebP, 10,000 of them ~20 MB
THUMB_QUALITY = 60
# Formats a browser shows itself: the large view links the original; others show the thumbnail enlarged.
BROWSER_FORMATS = {".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".gif", ".webp", ".bmp", ".avif", ".ico"}
HEATMAP_CHOICES = ("all", "flagged", "none")


@dataclass
class ReportOptions:
    heatmaps: str = "flagged"  # which images get a heatmap (scoring every textured cell costs ~1 ms a cell)
    base: Optional[str] = None  # folder that relative record paths are relative to (default: the current one)
    workers: int = 0  # thumbnail processes (0: in this process)
    max_pixels: Optional[int] = None
    title: str = "ccscore report"


def thumbnail(path: str, max_pixels: Optional[int] = None) -> tuple[Optional[str], Optional[str]]:
    """(WebP data URI of the image's thumbnail, None) or (None, why not, one line)."""
    from PIL import Image

    from .errors import one_line
    from .images import load_image

    try:
        rgb = load_image(path, max_pixels).rgb()
        im = Image.fromarray(rgb)
        im.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BOX if max(im.size) > 4 * THUMB_SIDE
                     else Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        im.save(buf, "WEBP", quality=THUMB_QUALITY, method=4)
        return "data:image/webp;base64," + base64.b64encode(buf.getvalue()).decode("ascii"), None
    except Exception as exc:  # an image that cannot be read any more: the entry stays, without a picture
        return None, one_line(exc)[:200]


def _thumbnail_job(job: tuple[str, Optional[int]]) -> tuple[Optional[str], Optional[str]]:
    return thumbnail(*job)


def p_lossy(record: dict) -> Optional[float]:
    scores = record.get("scores")
    if not isinstance(scores, dict) or "clean" not in scores:
        return None
    return max(0.0, min(1.0, 1.0 - float(scores["clean"])))


def heatmap_cells(scorer: "Scorer", path: str, codecs: list[str]) -> Optional[list[int]]:
    """The coloured cells of an image's heatmap, flat: [left, top, right, bottom, codec index, alpha (0-255),
    P(lossy) in %, quality or -1] per cell; None when the image cannot be read."""
    from .errors import CCScoreError
    from .heatmap import compute_heatmap

    try:
        heat = compute_heatmap(scorer, path, whole=False)  # the record holds the image's own scores
    except (CCScoreError, OSError, ValueError):
        return None
    flat: list[int] = []
    for left, top, right, bottom, label, p, quality in heat.cells():
        if label not in codecs:
            codecs.append(label)
        flat += [left, top, right, bottom, codecs.index(label), cell_alpha(p, heat.threshold), round(100 * p),
                 -1 if quality is None else round(quality)]
    return flat


def thumbnails(paths: list[str], options: ReportOptions) -> list[tuple[Optional[str], Optional[str]]]:
    """Each image's (thumbnail, problem), in worker processes when there are many."""
    jobs = [(path, options.max_pixels) for path in paths]
    if options.workers > 1 and len(jobs) > 16:
        # Forked before any model session exists in this process (see build_report): they need only Pillow.
        context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods()
                                              else None)
        with context.Pool(options.workers) as pool:
            return list(pool.imap(_thumbnail_job, jobs, chunksize=16))
    return [_thumbnail_job(job) for job in jobs]


def entries(records: list[dict], options: ReportOptions, make_scorer: Optional[Callable[[], "Scorer"]],
            labels: list[str], codecs: list[str]) -> tuple[list[dict], Optional["Scorer"]]:
    """One entry per record, with its thumbnail and, as `options.heatmaps` asks, its heatmap cells (drawn by
    the scorer `make_scorer` makes, when its labels are the run's: another model's cells would not match)."""
    paths = [os.path.join(options.base, r["path"]) if options.base and not os.path.isabs(r["path"]) else r["path"]
             for r in records]
    thumbs = thumbnails(paths, options)
    scorer = make_scorer() if make_scorer is not None and options.heatmaps != "none" else None
    if scorer is not None and list(scorer.labels) != labels:
        scorer = None
    out = []
    for record, real, (thumb, problem) in zip(records, paths, thumbs):
        label = record.get("label", "error")
        try:
            size = os.stat(real).st_size
        except OSError:
            size = None
        entry = {"path": record["path"], "label": label, "p": p_lossy(record),
                 "q": record.get("quality"), "w": record.get("width"), "h": record.get("height"),
                 "size": size, "ev": record.get("evidence"), "scores": record.get("scores"),
                 "err": record.get("error") or problem, "thumb": thumb}
        if size is not None and os.path.splitext(real)[1].lower() in BROWSER_FORMATS:
            entry["src"] = Path(os.path.abspath(real)).as_uri()
        wants_heatmap = options.heatmaps == "all" or (options.heatmaps == "flagged" and label not in ("clean", "error"))
        if scorer is not None and wants_heatmap and "error" not in record and size is not None:
            entry["cells"] = heatmap_cells(scorer, real, codecs)
        out.append(entry)
    return out, scorer


def render(entries_: list[dict], labels: list[str], codecs: list[str], options: ReportOptions,
           source: str, tile_size: Optional[int], threshold: float) -> bytes:
    """The HTML file: the template with the data inlined, every `<`, `>` and `&` as a JSON escape: no string
    (a file name such as `<!--<script>.png`) can end the data's script element or make the parser swallow the
    page after it."""
    data = {"title": options.title, "source": source, "labels": labels, "threshold": threshold,
            "tile": tile_size, "heatmaps": options.heatmaps,
            "codecs": [{"label": c, "colour": list(CODEC_COLOURS.get(c, OTHER_COLOUR))} for c in codecs],
            "entries": entries_}
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    html = TEMPLATE.read_text(encoding="utf-8")
    return html.replace(DATA_MARKER, text, 1).encode("utf-8", "surrogateescape")


def build_report(records_path: str, options: ReportOptions,
                 make_scorer: Optional[Callable[[], "Scorer"]] = None) -> tuple[bytes, int, list[dict]]:
    """(HTML bytes, entries, the records file's unreadable lines as error records) of a saved run.

    `make_scorer` is called (once, after the thumbnail workers are done: they fork) when heatmaps are asked for.
    """
    from .outputs import RecordsFile

    records = RecordsFile(records_path)
    good, bad_lines = [], []
    for record in records:
        (bad_lines if "line" in record else good).append(record)
    codecs = [label for label in records.labels if label != "clean"]
    built, scorer = entries(good, options, make_scorer, records.labels, codecs)
    html = render(built, records.labels, codecs, options, os.path.basename(records_path),
                  scorer.info.tile_size if scorer is not None else None,
                  scorer.threshold if scorer is not None else 0.5)
    return html, len(built), bad_lines
