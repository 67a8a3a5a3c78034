"""Which records a run's actions take: one place for the score command and `ccscore act` (saved scores).

A record is flagged when its label is not clean. `Selection.takes` is the one test both commands apply, so a
new way of selecting (a quality cut, say) is added here once and both commands get it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

SELECTIONS = ("flagged", "clean")
CLEAN = "clean"


@dataclass(frozen=True)
class Selection:
    which: str = "flagged"  # one of SELECTIONS

    @staticmethod
    def problem(which: str) -> Optional[str]:
        """Why `which` is not a selection (a usage error, one line), or None."""
        if which not in SELECTIONS:
            return f"--select must be one of {', '.join(SELECTIONS)}, got {which!r}"
        return None

    @staticmethod
    def flagged(record: dict) -> bool:
        """Whether a scored record is flagged (an error record is neither flagged nor clean)."""
        return record["label"] != CLEAN

    def takes(self, record: dict) -> bool:
        """Whether an action takes this record: scored records only, never an error record."""
        return "label" in record and self.flagged(record) == (self.which == "flagged")
