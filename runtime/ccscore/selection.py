"""Which records count as flagged, and which a command selects: one rule for `ccscore` (actions, --select,
the summary), `ccscore act` (saved scores) and anything that reads its records back: a new way of selecting is
added here once and every command gets it.

By default an image is flagged when its label is not clean. With a quality cut (`--flag-below Q`) it is
flagged only when it is lossy and its estimated quality is below Q: curators who keep "JPEG 90 and up" cut there.
An image whose quality is unknown (a model without a quality output) is then not flagged: acting on it would
be a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

CLEAN = "clean"
SELECTIONS = ("flagged", "clean")
QUALITY_RANGE = (1.0, 101.0)  # 101: every lossy image with a quality, even one estimated at 100


@dataclass(frozen=True)
class Selection:
    which: str = "flagged"  # "flagged" or "clean": what actions take and --select shows
    flag_below: Optional[float] = None  # flagged only when lossy with quality below this

    def __post_init__(self):
        if self.which not in SELECTIONS:
            raise ValueError(f"--select must be one of {', '.join(SELECTIONS)}, got {self.which!r}")
        lo, hi = QUALITY_RANGE
        if self.flag_below is not None and not lo <= self.flag_below <= hi:
            raise ValueError(f"--flag-below must be a quality within [{lo:g}, {hi:g}], got {self.flag_below:g}")

    def flagged(self, record: dict) -> bool:
        """Whether a scored record counts as flagged (error records never do)."""
        label = record.get("label")
        if label is None or label == CLEAN:
            return False
        if self.flag_below is None:
            return True
        quality = record.get("quality")
        return quality is not None and quality < self.flag_below

    def takes(self, record: dict) -> bool:
        """Whether actions take the record and --select shows it (error records: never)."""
        return "label" in record and self.flagged(record) == (self.which == "flagged")
