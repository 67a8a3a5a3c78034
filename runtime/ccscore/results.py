"""What scoring returns: per image, and per tile with its box."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .evidence import MIN_VOTES, ImageEvidence
from .tiling import Box


@dataclass
class TileScore:
    box: Box  # left, top, right, bottom in image pixels
    scores: dict[str, float]
    quality: Optional[float] = None

    def to_dict(self) -> dict:
        d = {"box": list(self.box), "scores": self.scores}
        if self.quality is not None:
            d["quality"] = self.quality
        return d


@dataclass
class ScoreResult:
    label: str
    scores: dict[str, float]  # label -> probability, aggregated over tiles; sums to 1
    quality: Optional[float] = None  # estimated encoder quality (0-100) of the detected codec
    tiles: list[TileScore] = field(default_factory=list)
    size: tuple[int, int] = (0, 0)  # width, height
    path: Optional[str] = None
    # What the tiles could show (ccscore.evidence); None for models without grid evidence.
    evidence: Optional[ImageEvidence] = None

    @property
    def flagged(self) -> bool:
        return self.label != "clean"

    def to_dict(self, with_tiles: bool = False) -> dict:
        d: dict = {}
        if self.path is not None:
            d["path"] = self.path
        d["label"] = self.label
        d["scores"] = self.scores
        d["quality"] = self.quality  # null for clean images and for models without a quality output
        d["width"], d["height"] = self.size
        if self.evidence is not None:
            d["evidence"] = self.evidence.word
            # null where too few quadrants voted to measure an agreement (evidence "weak" or "none")
            d["grid_agreement"] = {f"{n}x{n}": round(v.agreement, 4) if v.voting >= MIN_VOTES else None
                                   for n, v in sorted(self.evidence.grids.items())}
        if with_tiles:
            d["tiles"] = [t.to_dict() for t in self.tiles]
        return d


@dataclass
class ScoreFailure:
    """An image the model could not score (its outputs were unusable): an error record, never a decision.
    `Scorer.score_together` returns these beside `ScoreResult`s; calls that return results raise instead."""

    error: str  # one line
    path: Optional[str] = None

    def to_dict(self, with_tiles: bool = False) -> dict:
        return {**({"path": self.path} if self.path is not None else {}), "error": self.error}
