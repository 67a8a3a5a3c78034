"""What exp.py and tta.py share: the two calibration sets' rows (the fit's cached reads). Both write rows with scores
by the fit's own `resized_appearance.write_rows`."""
from pathlib import Path

from ccscore import Scorer
from ccscore_export import resized_appearance as ra
from ccscore_export.resized_judge import reader_digest

CELLS_CACHE = Path("data/judge/cells")
CALIBRATION_SETS = ("data/eval-wild-cal", "data/eval-wild-cal-small")


def reader() -> str:
    return reader_digest(Scorer(device="cpu", judge_appearance=False).model_digest)


def calibration_rows(reader_key: str) -> list[dict]:
    return [row for root in CALIBRATION_SETS for row in ra.collect_cached(Path(root), True, CELLS_CACHE, reader_key, 2)]
