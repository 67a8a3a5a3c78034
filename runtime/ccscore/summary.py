"""What a run did, counted record by record: for the summary line on stderr and `--summary-json FILE`."""

from __future__ import annotations

import json
import os
import stat
from collections import Counter
from typing import Optional, Sequence

from .selection import Selection

SUMMARY_MARKER = "ccscore_summary"
# An existing --summary-json larger than this is no summary of ours (they hold counts: a few kB), and is not read whole.
SUMMARY_MAX_BYTES = 1 << 20
FORMAT_VERSION = 1
QUALITY_BIN = 10  # quality histogram bins: 0-9, 10-19, ..., 90-100


def quality_bin(quality: float) -> str:
    low = min(int(quality // QUALITY_BIN) * QUALITY_BIN, 100 - QUALITY_BIN)
    return f"{low}-{low + QUALITY_BIN - 1 if low < 100 - QUALITY_BIN else 100}"


class RunSummary:
    """Counts per label, per quality bin (images with a quality estimate: the lossy ones) and per evidence
    word, the flagged ones (`Selection.flagged`), and the failures."""

    def __init__(self, labels: Sequence[str], selection: Selection = Selection()):
        self.selection = selection
        self.flagged = 0  # by the selection's rule (with --flag-below: lossy and below the quality)
        self.labels: Counter = Counter({label: 0 for label in labels})
        self.quality: Counter = Counter()
        self.evidence: Counter = Counter()
        self.failed = 0

    def add(self, record: dict) -> None:
        if "error" in record:
            self.failed += 1
            return
        self.labels[record["label"]] += 1
        self.flagged += self.selection.flagged(record)
        if record.get("quality") is not None:
            self.quality[quality_bin(record["quality"])] += 1
        if record.get("evidence"):
            self.evidence[record["evidence"]] += 1

    @property
    def scored(self) -> int:
        return sum(self.labels.values())

    def histogram(self) -> dict[str, int]:
        bins = [quality_bin(q) for q in range(0, 100, QUALITY_BIN)]
        return {b: self.quality[b] for b in bins}

    def detail_line(self) -> str:
        """Labels, quality bins and evidence words, the empty ones left out."""
        parts = ["labels: " + ", ".join(f"{label} {n}" for label, n in self.labels.items())]
        if self.quality:
            parts.append("quality: " + ", ".join(f"{b} {n}" for b, n in self.histogram().items() if n))
        if self.evidence:
            parts.append("evidence: " + ", ".join(f"{word} {n}" for word, n in sorted(self.evidence.items())))
        return "; ".join(parts)

    def to_dict(self, **more) -> dict:
        return {SUMMARY_MARKER: FORMAT_VERSION, "scored": self.scored, "failed": self.failed,
                "flagged": self.flagged, "flag_below": self.selection.flag_below, "labels": dict(self.labels), "quality": self.histogram(),
                "evidence": dict(sorted(self.evidence.items())), **more}


def check_summary_path(path: str) -> Optional[str]:
    """Why `path` cannot take a summary (None if it can): it may be new or an earlier run's summary, never
    another file (it is replaced when the run ends)."""
    if os.path.isdir(path):
        return f"--summary-json {path} is a directory"
    if not os.path.lexists(path):
        folder = os.path.dirname(path) or "."
        return None if os.path.isdir(folder) else f"--summary-json {path}: no folder {folder}"
    try:  # without blocking: a FIFO (or one swapped in since) must not hang the check
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        fd = None
    earlier = None
    if fd is not None:
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):  # a device or FIFO would be read without end
                return f"--summary-json {path} is not a regular file; choose another file"
            text = f.read(SUMMARY_MAX_BYTES + 1)
        try:
            earlier = json.loads(text) if len(text) <= SUMMARY_MAX_BYTES else None
        except ValueError:
            pass
    if not (isinstance(earlier, dict) and SUMMARY_MARKER in earlier):
        return f"--summary-json {path} exists and is not a ccscore summary; choose another file"
    return None


def write_summary(path: str, summary: dict) -> None:
    """Replaces `path` with `summary` atomically (a temporary file renamed over it)."""
    tmp = os.path.join(os.path.dirname(path) or ".", f".{os.path.basename(path)}.ccscore-new-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
