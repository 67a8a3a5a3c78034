"""What scoring returns: per image, and per tile with its box."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .container import recompressed
from .evidence import ImageEvidence
from .quantisation import TableEstimate
from .tiling import Box
from .webp_quality import WebPQualityEstimate


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
    # Where `quality` comes from: "table" (the IJG table read from the pixels: exact), "steps" (a WebP's
    # quantiser steps read from the pixels, fitted to libwebp's quality: ccscore.webp_quality), "model" (the
    # learned head: approximate, as for resized images), "both" (a custom table's nearest IJG quality averaged
    # with the head's); None without a quality.
    quality_source: Optional[str] = None
    table: Optional[TableEstimate] = None  # a JPEG's luma quantisation table read from its pixels
    container: Optional[dict] = None  # header facts of the file (ccscore.container); None for arrays and images
    # The codec whose decoder the colours came out of (ccscore.decoders), where the decoder check asked and
    # found one; else None.
    decoder: Optional[str] = None
    webp: Optional[WebPQualityEstimate] = None  # a WebP's quantiser steps read from its pixels

    @property
    def flagged(self) -> bool:
        return self.label != "clean"

    @property
    def recompressed(self) -> Optional[bool]:
        """The pixels tell a lossier story than the file's header (ccscore.container.recompressed)."""
        return recompressed(self.container, self.label, self.quality, self.quality_source)

    def with_container(self, container: Optional[dict]) -> "ScoreResult":
        self.container = container
        return self

    def details(self) -> dict:
        """The --details view: the luma table read from the pixels (8x8, null where unknown), its kind ("ijg"
        with the match error of the steps found one by one, or "custom" with the nearest IJG quality), the
        lattice evidence, the 8x8 and 4x4 grid offsets (x, y), how the image was halved (evidence "halved"), the
        block grid's period found downscaled and the plane it showed in (evidence "downscaled"), the factor upscaled by
        (evidence "upscaled"), the chroma's sharpness relative to luma's (evidence "chroma", and "downscaled" in
        chroma), the chroma subsampling guess, a WebP's quantiser steps (ccscore.webp_quality), and the codec whose
        decoder made the colours (null where not asked or not found)."""
        table = self.table
        d: dict = {"luma_table": table.table() if table is not None and table.kind else None,
                   "table_kind": table.kind if table is not None else None,
                   "table_quality": table.nearest_quality if table is not None and table.kind else None,
                   "table_match_error": (round(table.fit.error, 4) if table is not None and table.kind == "ijg"
                                         and table.fit is not None else None),
                   # the IJG lattice fit's evidence per coefficient: what the table check stands on (JPEG from
                   # ccscore.scorer.LATTICE_EVIDENCE, "ijg" from quantisation.MIN_EVIDENCE)
                   "table_evidence": (round(table.evidence, 4) if table is not None and table.quality is not None
                                      else None)}
        if self.evidence is not None:
            d["grid_offset"] = {f"{n}x{n}": (None if v.offset is None else [v.offset[1], v.offset[0]])
                                for n, v in sorted(self.evidence.grids.items(), reverse=True)}
            # evidence "halved": how many times (1: upscaled x2 after compression, 2: x4) and from which image
            # pixel (x, y) the blocks (2x2 or 4x4) were taken; null otherwise
            halvings = self.evidence.halvings
            d["halved"] = {"times": halvings, "from": list(self.evidence.halved_from)} if halvings else None
            # evidence "downscaled": the JPEG block grid's period in pixels, the downscale factor it implies and the
            # plane it showed in ("luma", or "chroma" where luma's grid was too faint); "judged": the resized-damage
            # judge's probability where it found the grid (no single rule did; the strongest plane's period), else null;
            # "blocks": [agreeing, read] where the blocks' quantisation read back through the downscale found it
            # (windows agreeing on one 8x8 phase; the period then the one read back at), else null; "blocks_from":
            # what those windows were read on ("tiles": the scored tiles; "whole": a small image's whole pixels), else
            # null; "appearance": the resized-damage appearance network's score where it found it (no grid read
            # did; the period the strongest plane's peak's), else null; both "judged" and "appearance" where the two
            # together renamed a WebP or AVIF verdict nothing proved (`Scorer.asks_rename`)
            period = self.evidence.downscaled_period
            judged, blocks = self.evidence.downscaled_judged, self.evidence.downscaled_blocks
            appearance = self.evidence.downscaled_appearance
            appearance = None if appearance is None else round(appearance, 6)
            d["downscaled"] = None if period is None else {"period": round(period, 3), "scale": round(period / 8, 3),
                                                           "plane": self.evidence.downscaled_plane,
                                                           "judged": None if judged is None else round(judged, 4),
                                                           "appearance": appearance,
                                                           "blocks": None if blocks is None else list(blocks),
                                                           "blocks_from": self.evidence.downscaled_blocks_from}
            # evidence "upscaled": the factor (x, y) the image was upscaled by after compression (not 2 or 4)
            factor = self.evidence.upscaled_by
            d["upscaled"] = None if factor is None else {"scale": [round(factor[0], 4), round(factor[1], 4)]}
            # evidence "chroma" (and "downscaled" in chroma): chroma's sharpness relative to luma's (near 1 for clean
            # art; subsampled chroma lower)
            sharpness = self.evidence.chroma_sharpness
            d["chroma"] = None if sharpness is None else {"sharpness": round(sharpness, 4)}
        d["subsampling"] = table.subsampling if table is not None else None
        webp = self.webp
        # a WebP's quantisers shown (strongest first) with the macroblocks read at each, and the strongest's contrast
        d["webp_steps"] = None if webp is None else {"quantisers": list(webp.quantisers),
                                                     "macroblocks": list(webp.macroblocks),
                                                     "contrast": round(webp.contrast, 4)}
        d["decoder"] = self.decoder
        return d

    def to_dict(self, with_tiles: bool = False, with_details: bool = False) -> dict:
        d: dict = {}
        if self.path is not None:
            d["path"] = self.path
        d["label"] = self.label
        d["scores"] = self.scores
        d["quality"] = self.quality  # null for clean images and for models without a quality output
        d["quality_source"] = self.quality_source
        d["width"], d["height"] = self.size
        if self.evidence is not None:
            d["evidence"] = self.evidence.word
            # null where too few quadrants voted to measure an agreement (evidence "weak" or "none")
            d["grid_agreement"] = {f"{n}x{n}": round(v.agreement, 4) if v.checkable else None
                                   for n, v in sorted(self.evidence.grids.items())}
        if self.container is not None:
            d["container"] = self.container
            d["recompressed"] = self.recompressed
        if with_details:
            d["details"] = self.details()
        if with_tiles:
            d["tiles"] = [t.to_dict() for t in self.tiles]
        return d


@dataclass
class ScoreFailure:
    """An image the model could not score (its outputs were unusable): an error record, never a decision.
    `Scorer.score_together` returns these beside `ScoreResult`s; calls that return results raise instead."""

    error: str  # one line
    path: Optional[str] = None

    def with_container(self, container: Optional[dict]) -> "ScoreFailure":
        return self  # an image that could not be scored has no story to compare its header with

    def to_dict(self, with_tiles: bool = False, with_details: bool = False) -> dict:
        return {**({"path": self.path} if self.path is not None else {}), "error": self.error}
