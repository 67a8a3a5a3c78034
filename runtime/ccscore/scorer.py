"""`Scorer`: load a model once, then score images, PIL images or arrays."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Optional, Sequence, TypeVar

import numpy as np

from .container import read_container
from .decoders import DecoderTrace, decoder_trace
from .downscaled_blocks import MIN_WINDOWS, BackAgreement, back_agreement, candidate_periods
from .errors import ImageError, ModelError, ModelOutputError, one_line, without_path
from .evidence import ImageEvidence, image_evidence
from .images import ImageInput, load_image
from .model_info import MAX_TILES_RANGE, PHASES, PROBS, QUALITY, ModelInfo, default_model_path, number
from .pipeline import DEFAULT_FILE_TIMEOUT
from .quantisation import TableEstimate, estimate_luma_table
from .resized import (CHROMA_PLANES, GridPeak, chroma_grid_peak, chroma_peaks, chroma_sharpness, grid_peak, is_grey,
                      resized_features, resized_period)
from .resized_appearance import ResizedAppearance
from .resized_judge import ResizedJudge
from .providers import CPU, Device, Session, create_session, import_onnxruntime, session_threads
from .results import ScoreFailure, ScoreResult, TileScore
from .tiling import Box, Tiles, halvings, make_tiles
from .webp_quality import MACROBLOCK, WebPQualityEstimate, estimate_webp_quality

if TYPE_CHECKING:
    from .heatmap import Heatmap

# The reference's four, plus worst_half: the mean over the half of the tiles that look most damaged. Damage
# is often local (one textured region shows the grid), so half the tiles voting "no evidence" should not
# outvote it.
AGGREGATIONS = ("mean", "median", "max", "min", "worst_half")
CLEAN = "clean"
JPEG = "jpeg"
JPEG_GRID = 8  # JPEG's block size: the grid period whose modal phase the table is read on
WEBP = "webp"
WEBP_GRID = 4  # VP8's transform block: the grid period a WebP's quantiser steps are read on
# A WebP's quality read from its quantiser steps (ccscore.webp_quality) replaces the head's, unless the two are
# further apart than this: then the steps may have come from the art (edge values that fit a coarse step). On
# eval-wild-cal's 720 WebP images: 8 that far apart, the head nearer the truth for 4 (MAE 3.91 -> 3.87); steps
# within 5 of the truth were up to 27 from the head, which flattens low qualities (q30-40 read as about 57).
WEBP_MAX_DISAGREEMENT = 30.0
FIRST_TABLE_TILES = 2
# At most this many pixels of tiles (the first, most textured; always one) are read for a JPEG's table, a WebP's
# steps or the decoder check's colours, whatever the model's tiling (the bundled model's: 128K; 256 tiles of 512
# read whole: 4 GB and 7 s for the colours).
TABLE_PIXELS = 1 << 20
# A JPEG's table read in its pixels overrules a grid gate that found too little agreement (high qualities: the
# tiles barely show the grid; small images: too few quadrants to check one). It is read where the tiles lean JPEG
# (P(jpeg) before the gate), on the 8x8 grid where its quadrants agree, else at the image's origin, whatever the
# gate and the threshold then say (see Scorer.table_check); it must show a lattice of
# LATTICE_EVIDENCE per coefficient (quantisation.fit_ijg_lattice; IJG tables >= 0.5, JPEG q95-98 0.26-1.1,
# clean art at most 0.22 on eval-wild-cal). The image's P(clean), and every other codec's probability, is then
# cut to LATTICE_KEPT_SHARE of itself, the rest moved to JPEG.
LATTICE_MIN_JPEG_P = 0.05
# ...or, whatever the tiles lean to, where the 8x8 quadrants agree this much (clean art agrees 0.2-0.3 on average,
# JPEG about 0.96): on both evaluation sets about 1% of images, clean ones showing a lattice of at most 0.05.
LATTICE_AGREEMENT_ANY_LEAN = 0.4
LATTICE_MIN_AGREEMENT = 0.2
LATTICE_EVIDENCE = 0.3
# Read at the origin (no agreeing grid vote), over at least this many AC frequencies (TableEstimate.frequencies_seen):
# a smooth gradient's one or two repeated coefficients fit a lattice too (a clean 74x71 sky crop: 0.78).
LATTICE_MIN_FREQUENCIES = 4
LATTICE_KEPT_SHARE = 0.1
# The decoder check (ccscore.decoders): where the scores see any lossy trace at all (P(clean) at most 1 - this,
# gate and table check applied), the colours of the image's tiles are asked which decoder made them; a proof moves
# the scores to that codec as a held table does (Scorer.decoder_proof). It names the codec of images the tiles
# call the other one (WebP of thin lines on black called JPEG) and lifts weak evidence (small JPEGs, q95-98).
# Images whose tiles see no trace at all are left alone (and cost nothing): a PNG made from a JPEG at quality 100
# is not what a curator throws away.
DECODER_MIN_LOSSY = 0.02
# How far a tile's probabilities may sum from 1 (float16 graphs round to ~1e-3) before they count as invalid.
PROB_SUM_TOLERANCE = 1e-2
# An image's scores from its tiles' outputs, and the grid evidence they stand on (see Scorer.judge).
Judgement = tuple[dict[str, float], Optional[ImageEvidence]]
# Whether an image's JPEG table shows as a lattice, given the outputs and evidence its scores stand on (see
# Scorer.table_check, Scorer.judge_as_scored).
LatticeCheck = Callable[["TileOutputs", Optional[ImageEvidence]], bool]


def grid_offset(evidence: Optional[ImageEvidence]) -> Optional[tuple[int, int]]:
    """The modal phase of the image's 8x8 grid vote (row, column), or None without one."""
    vote = evidence.grids.get(JPEG_GRID) if evidence is not None else None
    return None if vote is None else vote.offset


def tile_grid_offsets(boxes: Sequence[Box], origin: tuple[int, int], period: int) -> list[tuple[int, int]]:
    """Where the image's grid of `period`, starting at `origin` (row, column), starts in each tile."""
    return [((origin[0] - box[1]) % period, (origin[1] - box[0]) % period) for box in boxes]


def pixels_read(tiles: Tiles) -> list[np.ndarray]:
    """The tiles' own pixels that the reads of the pixels look at (a JPEG's table, a WebP's steps, the decoder
    check's colours): the first, most textured tiles up to TABLE_PIXELS, at least one."""
    own = tiles.own()
    return own[: tiles_read(own)]


def tiles_read(own: Sequence[np.ndarray]) -> int:
    """How many of the first tiles' own pixels (`Tiles.own`) fit in TABLE_PIXELS, at least one."""
    return max(1, int((np.cumsum([t.shape[0] * t.shape[1] for t in own]) <= TABLE_PIXELS).sum()))


def aggregate(probs: np.ndarray, method: str, clean_index: Optional[int] = None) -> np.ndarray:
    """Tile probabilities [N, C] -> one distribution [C] (renormalised: median/max/min need not sum to 1).

    Where median or min leave nothing (tiles that disagree completely), the mean decides: a uniform
    distribution would be a decision that no tile made.
    """
    if method not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {method!r}: use one of {', '.join(AGGREGATIONS)}")
    if method == "worst_half":
        if clean_index is None:
            raise ValueError("aggregation worst_half needs a model with a 'clean' label")
        worst = np.argsort(probs[:, clean_index], kind="stable")[: (len(probs) + 1) // 2]
        combined = probs[worst].mean(axis=0).astype(np.float64)
    else:
        combined = getattr(np, method)(probs, axis=0).astype(np.float64)
    total = combined.sum()
    if total <= 0:
        combined = probs.mean(axis=0).astype(np.float64)
        total = combined.sum()
    return combined / total


def invalid_rows(outputs: "TileOutputs") -> np.ndarray:
    """Per tile, whether its outputs are unusable: NaN or infinite values, negative or probabilities that do not
    sum to 1. One pass over a whole run's outputs."""
    probs, quality = outputs.probs, outputs.quality
    with np.errstate(invalid="ignore"):
        bad = ~(np.abs(probs.sum(axis=1, dtype=np.float64) - 1.0) <= PROB_SUM_TOLERANCE)  # NaN sums included
        bad |= ~np.isfinite(probs).all(axis=1) | (probs < 0).any(axis=1)
    if quality is not None:
        bad |= ~np.isfinite(quality)
    if outputs.phases is not None:
        bad |= ~np.isfinite(outputs.phases).all(axis=1)
    return bad


def output_problem(outputs: "TileOutputs") -> str:
    """Why outputs that `invalid_rows` refused are unusable, in one line."""
    probs = outputs.probs
    if outputs.phases is not None and not np.isfinite(outputs.phases).all():
        return "model produced invalid output: phases hold NaN or infinity"
    if not np.isfinite(probs).all():
        return "model produced invalid output: probs hold NaN or infinity"
    if (probs < 0).any():
        return f"model produced invalid output: negative probability {float(probs.min()):.4g}"
    sums = probs.sum(axis=1, dtype=np.float64)
    if (np.abs(sums - 1.0) > PROB_SUM_TOLERANCE).any():
        worst = int(np.argmax(np.abs(sums - 1.0)))
        return f"model produced invalid output: probabilities sum to {sums[worst]:.4g}, not 1"
    return "model produced invalid output: quality holds NaN or infinity"


def proven(scores: dict[str, float], codec: str) -> dict[str, float]:
    """An image's scores once a check found `codec`'s own trace (the table check: a JPEG lattice, see
    LATTICE_EVIDENCE; the decoder check: colours only its decoder outputs, see DECODER_MIN_LOSSY): P(clean), and
    every other codec's probability, cut to LATTICE_KEPT_SHARE of itself, the rest moved to `codec` (with AVIF and
    JPEG XL labels, JPEG called AVIF fell from 53 to 38 of 2,640 on the calibration set)."""
    checked = dict(scores)
    for label in checked:
        if label != codec:
            checked[codec] += checked[label] * (1.0 - LATTICE_KEPT_SHARE)
            checked[label] *= LATTICE_KEPT_SHARE
    return checked


def decide(scores: dict[str, float], threshold: float) -> str:
    """`clean` unless P(clean) < 1 - threshold, then the likeliest other label."""
    if CLEAN not in scores:
        return max(scores, key=scores.get)
    if scores[CLEAN] >= 1.0 - threshold:
        return CLEAN
    return max((k for k in scores if k != CLEAN), key=scores.get)


@dataclass(frozen=True)
class TileOutputs:
    """A model's outputs for a run of tiles: probs [N, C], quality [N], phases [N, P] (the last two optional)."""

    probs: np.ndarray
    quality: Optional[np.ndarray] = None
    phases: Optional[np.ndarray] = None

    def rows(self, start: int, stop: int) -> "TileOutputs":
        return TileOutputs(*(None if a is None else a[start:stop] for a in (self.probs, self.quality, self.phases)))

    def __add__(self, more: "TileOutputs") -> "TileOutputs":
        return TileOutputs(*(None if a is None else np.concatenate([a, b])
                             for a, b in zip((self.probs, self.quality, self.phases),
                                             (more.probs, more.quality, more.phases))))

    def __len__(self) -> int:
        return len(self.probs)


@dataclass(frozen=True)
class EarlyStop:
    """Scores an image's `first_tiles` (its most textured), and stops there when the image judged on them
    (`Scorer.judge`: aggregate, then the grid gate on their quadrants) has P(clean) within `margin` of 0 or of 1.

    Most images are that clear: v0.6.0 scores 2.2 tiles per image on the wild evaluation set, and every group's
    figure moves by at most a point against scoring every tile (see the model card). Decisions near the
    threshold still get every tile. A threshold outside [margin, 1 - margin] turns it off: the stop would then
    not be safe.
    """

    first_tiles: int
    margin: float

    def applies(self, threshold: float) -> bool:
        return self.first_tiles > 0 and self.margin <= 1.0 - threshold <= 1.0 - self.margin

    def decided(self, p_clean: float) -> bool:
        return p_clean <= self.margin or p_clean >= 1.0 - self.margin


@dataclass(frozen=True)
class GridGate:
    """Image-level decision on grid evidence (model metadata `grid_gate`; see ccscore.evidence).

    A lossy label stands only as far as the image's tile quadrants agree on that codec's block grid: its
    probability is scaled by sigmoid(slope * (agreement - center of the label)), the rest moves to clean. Each
    label has its own center: chance agreement differs by grid (a x2 upscale leaves 4 of the 16 phases of the
    4x4 grid in play, but 16 of the 64 of the 8x8). With too few voting quadrants (evidence "weak") there is no
    agreement to check: the probability is scaled by `weak`, so the tiles alone must be that much surer. An
    image without any detail is clean (evidence "none").
    """

    periods: dict  # lossy label -> grid period whose agreement supports it; labels not named are not gated
    centers: dict  # lossy label -> agreement at which the gate halves its probability
    slope: float
    weak: float

    @classmethod
    def from_metadata(cls, spec: dict) -> "GridGate":
        periods = {str(k): int(v) for k, v in spec["periods"].items()}
        center = spec["center"]
        centers = ({str(k): float(v) for k, v in center.items()} if isinstance(center, dict)
                   else {label: float(center) for label in periods})
        return cls(periods, centers, float(spec["slope"]), float(spec["weak"]))

    def metadata(self) -> dict:
        """The `grid_gate` metadata that rebuilds this gate."""
        return {"periods": dict(self.periods), "center": dict(self.centers), "slope": self.slope, "weak": self.weak}

    def factor(self, label: str, evidence: ImageEvidence) -> float:
        period = self.periods.get(label)
        if period is None:
            return 1.0
        vote = evidence.grids.get(period)
        if vote is None or not vote.checkable:
            return self.weak
        return float(1.0 / (1.0 + np.exp(-self.slope * (vote.agreement - self.centers[label]))))


# On an image halved (Scorer.halve_upscaled) the head often takes the blur of the round trip for AVIF; JPEG's 8x8
# grid tells. Upscaled x2 after compression (Pillow, 40 of eval-wild-cal's clean art each): the halved image's 8x8
# quadrants agreed this much for 38 of 39 JPEGs found, 1 of 32 AVIFs and 1 of 38 WebPs. There the scores are
# `proven` JPEG's.
HALVED_JPEG_AGREEMENT = 0.75
# A damage found halved stands only on a grid: enough quadrants of the halved image agreeing this much on one grid
# (either period). On eval-wild-cal, clean art flagged halved agreed at most 0.41 (4 of 2,160 images, most with
# one or two tiles' votes); the JPEGs upscaled x2, 0.80 or more but for 2 of 109 (0.43).
HALVED_MIN_AGREEMENT = 0.6
# ...among more quadrant votes than one tile gives: a tile's four quadrants share its content, and their agreement
# says little about one grid across the image. On eval-wild-cal every JPEG found halved had 5-8 votes; the clean
# images flagged halved on the report set (2 of 2,160 before this rule) had one tile each.
HALVED_MIN_VOTES = 5
# Halved twice (upscaled x4), only JPEG's own grid decides: the 8x8 grid agreeing HALVED_JPEG_AGREEMENT. Pixel art
# of eval-wild-cal upscaled x4 by a smoothing kernel, halved twice, shows its cells' 4 and 8 px grid: 11 of 480
# flagged (7 WebP on a 4x4 grid agreeing 0.93-1.0) without this rule. JPEG x4 named AVIF are lost with it.
HALVED_TWICE_ONLY_JPEG_SCALE = 4

# A JPEG downscaled after compression (Scorer.find_downscaled; ccscore.resized): an image judged clean (or WebP or AVIF,
# below: DOWNSCALED_RENAME) is JPEG's where
# the head, before the grid gate, leans lossy on its scored tiles (mean tile P(clean) at most
# DOWNSCALED_MAX_TILE_CLEAN) and its tiles' smooth-pixel profile peaks at a period of 8s px (s 0.51-0.95)
# DOWNSCALED_MIN_PEAK times its spectrum's median along both axes (with `resized.GridPeak.shows_grid`'s other
# rules). Either alone flags clean art: the head leans lossy on soft art the gate then clears, and upscales peak
# too, but there the head is sure it is clean (mean tile P(clean) of the clean art the peak alone flagged:
# 0.81-1.0, median 0.99; of the JPEGs it found: median 0.38). Chosen on eval-wild-cal plus two more draws of its
# resized kinds (3,360 clean images, 360 JPEG q50-90 downscaled x0.5-0.9), flagged / found:
# peak >= 4: 23 / 241 (0.8: 6 / 218); 5: 10 / 221 (0.8: 0 / 201; 0.75: 0 / 191; 0.9: 2 / 206); 4.5 and 0.8: 1 / 212.
# (Before `resized`'s texture rules, added since: with them 0 / 180.) With the drawn-pattern rule (session 15) and
# the calibration set's textured clean kinds (3,840 clean images), at 0.8: peak >= 5: 0 / 177; 4: 0 / 190;
# 3.5: 0 / 195; 3: 0 / 201 (without that rule 9 canvases and pixel art flagged at 3); of data/cache's 4,505
# lossless-verified Debian PNGs, none at 3 (one at 5 without it). 3.5 keeps a margin over a random spectrum's
# joint peak (about 2.6 times the median over this band).
DOWNSCALED_MIN_PEAK = 3.5
DOWNSCALED_MAX_TILE_CLEAN = 0.8
# A JPEG downscaled by 0.5-0.85 shows the head 4 px-ish blocks, and its gate may name it WebP (or AVIF). Such a verdict
# becomes JPEG's by the downscaled grid (Scorer.find_downscaled, with its other rules) only where no WebP step or
# AVIF decoder read proved the codec and the head hesitates (P(clean) at least DOWNSCALED_RENAME_MIN_CLEAN; or the grid
# alone is far over those codecs' own, below): of the
# calibration set and its extra draws, WebP and AVIF images showing the grid stood at P(clean) 0.00-0.03, downscaled
# JPEG named WebP or AVIF at 0.29-0.50 (and one at 0.09). Where the head's likeliest codec is WebP or AVIF (renamed,
# or judged clean at a strict threshold), never at a period of 16/3 px (DOWNSCALED_RENAME_AVOID): VP8's macroblocks and
# AV1's blocks are 16 px, their third harmonic falls there, and WebP, AVIF and JPEG upscaled x2 peaked there on the
# calibration set.
DOWNSCALED_RENAME = ("webp", "avif")
DOWNSCALED_RENAME_MIN_CLEAN = 0.25
DOWNSCALED_RENAME_AVOID = (16 / 3, 0.05)  # period, +- px
# However sure the head, the grid alone renames such a verdict where it repeats as a grid (`GridPeak.repeats_as_grid`:
# no harmonic of a stronger peak, no whole-pixel repeats, not repeating down the image) far over WebP's and AVIF's own
# (DOWNSCALED_RENAME_SURE_PEAK times its median), away from the band's edges, where VP8's 4 px and AV1's 8 px blocks
# fold (DOWNSCALED_RENAME_SURE_PERIODS); the texture rules of `shows_grid` are not asked: a JPEG damaged this much
# shows its grid in all its pixels. On the calibration set, of its 1,940 WebP and AVIF verdicts on WebP, AVIF and
# double-compressed images, those repeating so at 4.5-7.2 px (16/3 aside) peaked at most 2.5 times their median (the
# 4 px grid's harmonics peak up to 8.7 there, read as harmonics); its downscaled JPEG named WebP peaked 11.7-21.9 (6 of
# 10; the others failed the harmonic, period or modulation rule), and 2 textured canvases named WebP (clean art
# flagged either way) 21-23.
DOWNSCALED_RENAME_SURE_PEAK = 6.0
DOWNSCALED_RENAME_SURE_PERIODS = (4.5, 7.2)
# Damage resized after compression that left no grid to find: an image still judged clean (Scorer.find_downscaled)
# whose chroma is softer than its luma (`resized.chroma_sharpness` under CHROMA_MAX_SHARPNESS: a subsampling codec's
# half-resolution chroma, which a resize blurs no less than luma) and whose scored tiles lean lossy at all before the
# gate (mean tile P(clean) at most CHROMA_MAX_TILE_CLEAN: blurred and upscaled clean art with soft colour, where the
# head is sure, stays clean) is JPEG's, the commonest such codec (WebP and AVIF 4:2:0 resized show the same; named
# JPEG), quality null. Chosen on eval-wild-cal, its extra draws and data/cache's lossless-verified PNGs: see
# docs/evidence.md, evidence `chroma`.
CHROMA_MAX_SHARPNESS = 0.7
CHROMA_MAX_TILE_CLEAN = 0.95
# Where luma's grid is too faint, a JPEG's coarser chroma may still show it (`resized.chroma_grid_peak`;
# docs/evidence.md, evidence `downscaled` in chroma): an image still clean whose tiles lean lossy at all (CHROMA_MAX_TILE_CLEAN), whose
# chroma reads softer than its luma at all (under CHROMA_GRID_MAX_SHARPNESS) and whose Cb or Cr peaks as a grid at least
# CHROMA_GRID_MIN_PEAK times its median, and CHROMA_GRID_OVER_LUMA times luma's own peak in the band, is JPEG's. The
# ratio drops most textures and resize beats that peak in chroma (they peak in luma's smooth pixels too: on the
# calibration set and its extra draws, leaving out one parchment's variants, 11 clean images flagged at 1.0, 3 at 1.5,
# all grain resized), not all: grain whose rounding leaves chroma noise, resized, beats in chroma over a weak luma peak,
# and the lean and sharpness limits are what keep most of it clean. Chosen on eval-wild-cal, its extra draws, JPEG
# downscaled with 4:4:4 and 4:2:0 chroma (benchmarks/downscaled_by_subsampling.py's images) and data/cache's
# lossless-verified PNGs: docs/evidence.md, evidence `downscaled`.
CHROMA_GRID_MIN_PEAK = 4.0
CHROMA_GRID_OVER_LUMA = 1.5
CHROMA_GRID_MAX_SHARPNESS = 0.95
# A colour gradient's 8-bit steps under a grey grain (luma hides them, chroma does not) comb chroma at their spacing,
# and their second differences keep one sign down the image: the peak's `drawn` reads high (an attacker's grainy banded
# skies, luma sharpened or chroma softened: of 58 flagged, 1 read drawn <= 0.4). A JPEG's chroma blocks step up or down
# with the art (drawn median 0.26), but on a colour ramp their DC steps add up too; those still show a faint grid in
# luma. So the chroma peak must read drawn <= CHROMA_GRID_MAX_DRAWN unless luma's own peak reaches
# CHROMA_GRID_DRAWN_LUMA (the attacker's families: banded skies 25 -> 0 of 60, test art's stepped sky with soft chroma
# and grain 14 -> 3 of 60, grainy JPEGs found 26 -> 24 of 60; of both evaluation sets, the calibration set's extra
# draws, the subsampling images and the Debian PNGs, one verdict changed: a 4:4:4 JPEG of the report set's subsampling
# images no longer found).
CHROMA_GRID_MAX_DRAWN = 0.4
CHROMA_GRID_DRAWN_LUMA = 3.0
# What the rules above leave clean, the resized-damage judge (`resized_judge.ResizedJudge`, fitted for the bundled
# model by export/ccscore_export/resized_judge.py; its inputs `resized.resized_features`) may still find JPEG's: the
# signs of a grid each rule reads alone, weighed together. It is asked where the head leans lossy at all
# (JUDGE_MAX_TILE_CLEAN; the most clean art is settled there without the reads), the appearance network (where set)
# scores the image JUDGE_MIN_APPEARANCE or more, and the model is the one it was fitted for (its JSON names it).
# Evidence "downscaled" at the strongest plane's period, `details.downscaled.judged` its probability, quality null.
JUDGE_MAX_TILE_CLEAN = 0.99
# Where the judge leans that way without flagging (probability at least BLOCKS_MIN_JUDGED), the blocks' quantisation
# read back through the downscale (`downscaled_blocks.back_agreement`, at each plane's peak period, the strongest
# first) may still show it: the windows resampled back agree on one 8x8 phase
# (BLOCKS_MIN_AGREEMENT of them, at least downscaled_blocks.MIN_WINDOWS). Evidence "downscaled" at that period,
# `details.downscaled.blocks` the windows agreeing and read, quality null. Chosen on the calibration set and its extra
# draws (JPEG then downscaled found / clean images flagged, of 120 / 2,640 and 240 / 3,600): all windows agreeing at
# 0.01, 3 / 1 on the calibration set; 0.85 at 0.01: 6 / 2 and 14 / 14 (13 of them pixel art upscaled smoothly or manga
# downscaled, 10 judged under 0.05); 0.85 at 0.05: 4 / 1 and 12 / 4 (data/cache's 4,509 Debian PNGs: 2 at 0.01, 1);
# with downscaled_blocks.MIN_LEAD since, 3 / 1 and 11 / 4.
BLOCKS_MIN_JUDGED = 0.05
BLOCKS_MIN_AGREEMENT = 0.85
# The appearance network (`resized_appearance.ResizedAppearance`) is asked about what the judge and the blocks leave
# clean, and about images whose tiles lean lossy more faintly than the judge asks (APPEARANCE_MAX_TILE_CLEAN): of the
# calibration set's and its seed-61 draw's JPEG then downscaled still clean, 7 of 28 leaned 0.99-0.999 (none over),
# and the clean images that lean so scored under the threshold (session 25).
APPEARANCE_MAX_TILE_CLEAN = 0.999
# Where the appearance network is set, it is read first, and the judge (and the blocks) asked only about images it
# scores JUDGE_MIN_APPEARANCE or more, or has no cells to score (none in its tiles, nor, for a small image, in its whole
# pixels: `ResizedAppearance.score_image`): the judge's inputs cost ~19 ms an image asked, the
# network ~4-8 ms, and most clean art the judge is asked about the network scores far lower (session 26). Of the
# calibration set's images the judge was asked about (lean <= JUDGE_MAX_TILE_CLEAN), under 0.02: 1,111 of its 1,468
# clean ones (its seed-61 draw: 520 of 749), 1 of 213 JPEG then downscaled it flags (the draw: 0 of 194) and 1 of 351
# it leans on (>= BLOCKS_MIN_JUDGED; the draw: 1 of 352). A cut on the bundled network's scores: a refitted network
# needs it checked again (the judge's and the network's fits count the judge as asked without it: conservative).
JUDGE_MIN_APPEARANCE = 0.02
# Where the tiles give fewer windows than that (downscaled_blocks.MIN_WINDOWS: a small image, few tiles textured), a
# small image's whole pixels (`Tiles.whole`) are read instead, split into as many windows as fit: these take in its
# flatter parts too, whose votes scatter, so a lower share of more windows (BLOCKS_WHOLE_MIN_AGREEMENT of at least
# BLOCKS_WHOLE_MIN_WINDOWS). Chosen on the calibration set (JPEG then downscaled found / clean flagged, of 120 / 2,640):
# 0.85 of 4 or 0.8 of 5: 3 / 2 (a resampled image and its Lanczos twin, 5 of 5); 0.75 or 0.7 of 6: 3 / 0; 0.8 of 6: 2
# / 0; 0.75 of 8: 1 / 0; the same on a second draw of its clean sources' downscaled kinds (0 / 0 at 0.75 of 6) and on
# its textured and upscaled kinds' extra draws (0 / 0).
BLOCKS_WHOLE_MIN_AGREEMENT = 0.75
BLOCKS_WHOLE_MIN_WINDOWS = 6
# Where the judge leans further (BLOCKS_LEANING_JUDGED), fewer of the tiles' windows suffice: BLOCKS_LEANING_AGREEMENT
# of at least BLOCKS_LEANING_WINDOWS (3 of 3, 3 of 4, 6 of 8). Chosen on the calibration set, a second draw of it and
# three draws of its clean sources' JPEG then downscaled and downscaled kinds (600 JPEG then downscaled; with the
# textured and upscaled kinds' draws, 6,720 clean): judged >= 0.6 at 0.75 of 3: 9 found, none clean (at 0.5: one pixel
# art upscaled smoothly, judged 0.56, 3 of 4; at 2 of 3, 0.66: 10 clean, 5 of them one resampled image's draws); at
# 0.7: 6 found; at 0.75 of 4: 7.
BLOCKS_LEANING_JUDGED = 0.6
BLOCKS_LEANING_AGREEMENT = 0.75
BLOCKS_LEANING_WINDOWS = 3

# The Scorer attributes that decide results beside the model file: set at construction, or changed since (the
# calibration and tests set grid_gate and threshold on a built Scorer).
DECIDING_SETTINGS = ("aggregation", "threshold", "tiling_params", "max_pixels", "early_stop", "grid_gate",
                     "halve_upscaled", "find_downscaled", "resized_judge", "resized_appearance")


Fitted = TypeVar("Fitted", ResizedJudge, ResizedAppearance)  # the networks fitted for one model (Scorer._bundled)


def file_digest(path: os.PathLike | str) -> Optional[str]:
    """The file's SHA-256 (hex), or None when it cannot be read."""
    import hashlib

    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


class TileReads:
    """What the resized judgements (downscaled, chroma, judged) read of one image's tiles, each read at most once in a
    batch: the tiles' own pixels, luma's and chroma's grid peaks, chroma's sharpness."""

    def __init__(self, tiles: Tiles):
        self.tiles = tiles

    @cached_property
    def own(self) -> list[np.ndarray]:
        return self.tiles.own()

    @cached_property
    def luma_peak(self) -> Optional[GridPeak]:
        return grid_peak(self.own, self.tiles.boxes)

    @cached_property
    def chroma_peaks(self) -> list[Optional[GridPeak]]:
        """None each for grey tiles (`resized.is_grey`: no chroma to read)."""
        return [None] * len(CHROMA_PLANES) if is_grey(self.own) else chroma_peaks(self.own, self.tiles.boxes)

    @cached_property
    def sharpness(self) -> Optional[float]:
        return chroma_sharpness(self.own)

    def read_back_periods(self) -> list[tuple[float, str]]:
        """The periods the blocks are read back at (`downscaled_blocks.candidate_periods` of each plane's peak, the
        strongest first), each with the plane ("luma" or "chroma") whose peak gave it: the blocks' read in
        `Scorer._judge_blocks` and the source scan's (`lossless_check.resized_jpeg_agreement`)."""
        planes = [("luma", self.luma_peak)] + [("chroma", peak) for peak in self.chroma_peaks]
        planes = sorted(((name, peak) for name, peak in planes if peak is not None), key=lambda p: -p[1].strength)
        plane_of = {peak.period: name for name, peak in planes[::-1]}  # the strongest plane named for a period
        return [(period, plane_of[period]) for period in candidate_periods([peak.period for _, peak in planes])]


@dataclass(frozen=True)
class ScorerSettings:
    """What another process needs to score exactly as a CPU `Scorer` does: the model file it loaded (by absolute
    path and content) and the deciding settings' values. The pipeline's workers score with it (see
    `pipeline.run_pipeline`)."""

    model: str
    digest: str  # the model file's SHA-256 when the Scorer loaded it
    values: tuple  # (name, value) for each of DECIDING_SETTINGS, copied: later changes in place are not these

    @classmethod
    def of(cls, scorer: "Scorer") -> Optional["ScorerSettings"]:
        """None where a Scorer built elsewhere could not score as `scorer` does: a subclass (its overrides stay
        here), or a model file that could not be read back."""
        if type(scorer) is not Scorer or scorer.model_digest is None:
            return None
        import copy

        return cls(scorer.model_file, scorer.model_digest,
                   tuple((n, copy.deepcopy(getattr(scorer, n))) for n in DECIDING_SETTINGS))

    @staticmethod
    def blank(model: str) -> "Scorer":
        """The Scorer `build` starts from: `model` on CPU in one thread (a worker runs one per core: more threads
        would contend), default settings."""
        return Scorer(model, device="cpu", intra_op_threads=1, file_timeout=None)

    def build(self, spare: Optional["Scorer"] = None) -> "Scorer":
        """A one-thread CPU Scorer with these settings: `spare` (an unused `blank` Scorer built ahead of time) when
        it loaded this model file with this content, else a new one. `ModelError` when the model file is no longer
        the one loaded (replaced or deleted since)."""
        reuse = spare is not None and (spare.model_file, spare.model_digest) == (self.model, self.digest)
        scorer = spare if reuse else self.blank(self.model)
        if scorer.model_digest != self.digest:
            raise ModelError(f"{self.model}: the model file changed since it was loaded")
        for name, value in self.values:
            setattr(scorer, name, value)
        return scorer


class Scorer:
    """Scores images with one ONNX model; the session is created once and reused for every call.

    model: path to a ccscore ONNX model, or None for the bundled default.
    device: "auto" (CUDA when onnxruntime-gpu has it, else CPU), "cpu", "cuda", or a list of providers.
    aggregate / threshold / max_tiles: override the model's defaults from its metadata.
    all_tiles: score every chosen tile, never stopping early (see `EarlyStop`; the model's metadata sets it).
    halve_upscaled: an image judged clean whose first tiles look upscaled x2 or x4 (`tiling.halved_tiles`) is
        judged again halved (twice for x4), where an upscale after compression leaves the codec's grid at its
        period (evidence "halved"); one still clean whose tiles show an interpolation's pitch is judged again
        resampled back to the sizes it may have been upscaled from by another factor (`tiling.unscaled_tiles`;
        evidence "upscaled", JPEG's 8x8 grid alone deciding).
        Needs a grid gate (also where one is set on the built Scorer) and the model's content tiling; off otherwise.
    find_downscaled: an image still judged clean (or WebP or AVIF that nothing proved, the head hesitating or the grid
        far over those codecs' own: `_renames_by_grid_alone`), whose
        tiles lean lossy before the grid gate and show a JPEG's
        block grid at the period a downscale by 0.51-0.95 gives it (`resized.grid_peak`), is judged JPEG (evidence
        "downscaled"; no quality: the table does not survive the resize); so is one still clean whose tiles lean lossy
        at all and whose chroma is softer than its luma, as a subsampling codec leaves it (`resized.chroma_sharpness`;
        evidence "chroma"), or softer at all and showing the downscaled grid in Cb or Cr well over luma's peak
        (`resized.chroma_grid_peak`; evidence "downscaled" in chroma). Needs a grid gate (its evidence; also where
        one is set on the built Scorer), a JPEG label and the model's content tiling; off otherwise.
    judge_resized: with find_downscaled, images the rules above leave clean are asked of the resized-damage judge
        (`resized_judge.ResizedJudge`, `resized.resized_features`; evidence "downscaled", judged), where it was fitted
        for this model file and the tiles are chosen and scored as the model's metadata says (its inputs read them);
        those it leans on without flagging, of the blocks' quantisation read back through the downscale
        (`downscaled_blocks.back_agreement`; evidence "downscaled", blocks); with the appearance network, only those
        it scores JUDGE_MIN_APPEARANCE or more. False: neither, nor the appearance.
    judge_appearance: with judge_resized, those the judge and the blocks leave clean, and those leaning lossy more
        faintly than the judge asks (APPEARANCE_MAX_TILE_CLEAN), are asked of the resized-damage appearance network
        (`resized_appearance.ResizedAppearance`, over their tiles' most textured 64 px cells: tiles smaller than that
        give none and are never asked; evidence "downscaled", appearance), where it was fitted for this model file;
        WebP and AVIF verdicts that nothing proved become JPEG's where the judge and the network both flag them
        (evidence "downscaled", judged and appearance). False: not it.
    file_timeout: seconds one file may take to decode, tile and (on CPU) score in `pipeline.run_pipeline`'s
        worker processes before it is killed and recorded as too slow (None: no limit). Decoding in this process
        (`score`, `score_many`) cannot be stopped midway: use the pipeline for untrusted files.
    """

    def __init__(self, model: Optional[os.PathLike | str] = None, device: Device = "auto",
                 aggregate: Optional[str] = None, threshold: Optional[float] = None,
                 max_tiles: Optional[int] = None, batch_size: int = 64, max_pixels: Optional[int] = None,
                 intra_op_threads: Optional[int] = None, all_tiles: bool = False,
                 file_timeout: Optional[float] = DEFAULT_FILE_TIMEOUT, halve_upscaled: bool = True,
                 find_downscaled: bool = True, judge_resized: bool = True, judge_appearance: bool = True):
        import_onnxruntime()  # the most basic missing piece is reported first
        path = Path(model) if model is not None else default_model_path()
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        self._session: Session = create_session(str(path), device, intra_op_threads)
        # What the session loaded, for other processes to load the same (`ScorerSettings`): read once it has, as
        # close to its read as can be; an absolute path, as the working folder may change.
        self.model_file, self.model_digest = os.path.abspath(path), file_digest(path)
        session = self._session.session
        self.info = ModelInfo.from_metadata(path, session.get_modelmeta().custom_metadata_map)
        self._input, self._outputs = self.info.check_graph(session.get_inputs(), session.get_outputs())
        if self.info.aggregation not in AGGREGATIONS:
            raise ModelError(f"{path}: bad model metadata aggregation: {self.info.aggregation!r} is unknown "
                             f"(use one of {', '.join(AGGREGATIONS)})")
        if self.info.aggregation == "worst_half" and CLEAN not in self.info.labels:
            raise ModelError(f"{path}: bad model metadata aggregation: worst_half needs a '{CLEAN}' label")
        self.aggregation = aggregate or self.info.aggregation
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"unknown aggregation {self.aggregation!r}: use one of {', '.join(AGGREGATIONS)}")
        if self.aggregation == "worst_half" and CLEAN not in self.info.labels:
            raise ValueError(f"aggregation worst_half needs a model with a '{CLEAN}' label")
        self.threshold = self.info.threshold if threshold is None else float(threshold)
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be within [0, 1], got {self.threshold}")
        self.tiling_params = dict(self.info.tiling_params)
        if max_tiles is not None:
            if "max_tiles" not in self.tiling_params:
                raise ValueError(f"tiling strategy {self.info.tiling!r} takes no max_tiles")
            self.tiling_params["max_tiles"] = number("max_tiles", max_tiles, int, *MAX_TILES_RANGE)
        self.batch_size = batch_size
        self.max_pixels = max_pixels
        if file_timeout is not None and not file_timeout > 0:
            raise ValueError(f"file_timeout must be a positive number of seconds or None, got {file_timeout}")
        self.file_timeout = file_timeout
        stop = self.info.early_stop
        self.early_stop: Optional[EarlyStop] = None
        if stop and not all_tiles and CLEAN in self.labels:
            candidate = EarlyStop(stop["first_tiles"], stop["margin"])
            self.early_stop = candidate if candidate.applies(self.threshold) else None
        self.grid_gate = GridGate.from_metadata(self.info.grid_gate) if self.info.grid_gate else None
        self.halve_upscaled = bool(halve_upscaled) and self.grid_gate is not None and self.info.tiling == "content"
        self.find_downscaled = bool(find_downscaled) and self.grid_gate is not None and JPEG in self.labels \
            and self.info.tiling == "content"
        judging = judge_resized and self.find_downscaled
        self.resized_judge = self._bundled(path, ResizedJudge.bundled) if judging else None
        self.resized_appearance = (self._bundled(path, ResizedAppearance.bundled)
                                   if judging and judge_appearance else None)

    def _bundled(self, path: Path, load: Callable[[], Fitted]) -> Optional[Fitted]:
        """A network shipped beside the runtime (`load`: the resized-damage judge's or appearance's) where it was
        fitted for this model file (name, version and content), else None. A missing or broken file is a ModelError
        with the bundled model (a broken install), and none with another model (it would not be asked)."""
        try:
            network = load()
        except ModelError:
            if path.resolve() == default_model_path().resolve():
                raise
            return None
        return network if network.fitted_for == (self.info.name, self.info.version, self.model_digest) else None

    def _judge_applies(self) -> bool:
        """Whether the judge is asked: it is set, and tiles are chosen and scored as when it was fitted (the model's
        tiling parameters and early stop: its inputs include the tile count and the scored tiles' lean)."""
        if self.resized_judge is None or self.tiling_params != self.info.tiling_params:
            return False
        stop = self.info.early_stop
        fitted = EarlyStop(stop["first_tiles"], stop["margin"]) if stop and CLEAN in self.labels else None
        return self.early_stop == (fitted if fitted is not None and fitted.applies(self.threshold) else None)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.info.labels

    @property
    def providers(self) -> list[str]:
        return self._session.active

    @property
    def runs_on_cpu(self) -> bool:
        return self.providers == [CPU]

    @property
    def intra_op_threads(self) -> int:
        """Threads one run of the session may use (onnxruntime's 0: one per core)."""
        return session_threads(self._session.session.get_session_options().intra_op_num_threads)

    @property
    def fallback_note(self) -> Optional[str]:
        """Set when an accelerator was asked for and onnxruntime dropped it."""
        return self._session.fallback_note

    def tile(self, image: ImageInput, cut_on_read: bool = False) -> tuple[Tiles, tuple[int, int]]:
        """The image's tiles (and halved ones) and its size; `cut_on_read`: cut as scoring reads them, holding the
        decoded image until then (`tiling.CutOnRead`), for tiles scored at once."""
        decoded = load_image(image, self.max_pixels)
        return make_tiles(decoded, self.info.tiling, self.info.tile_size, self.tiling_params,
                          self.halve_upscaled, cut_on_read), decoded.size

    def run(self, pixels: np.ndarray) -> TileOutputs:
        """Raw model outputs for uint8 tiles [N, T, T, 3]: probs [N, C], quality [N] and phases [N, P] (the last
        two where the model has them).

        `ModelOutputError` when the model fails to run or its outputs have the wrong shape; their values are
        checked per image (`output_problem`).
        """
        widths = {PROBS: len(self.labels), QUALITY: 1, PHASES: 4 * sum(n * n for n in self.info.phase_grids)}
        parts: dict[str, list[np.ndarray]] = {name: [] for name in self._outputs}
        for i in range(0, len(pixels), self.batch_size):
            batch = pixels[i : i + self.batch_size]
            try:
                out = self._session.session.run(self._outputs, {self._input: batch})
            except Exception as exc:  # onnxruntime raises several unrelated types; the images get the error
                raise ModelOutputError(f"model failed to run: {one_line(exc)[:300]}") from None
            for name, value in zip(self._outputs, out):
                if value.size != len(batch) * widths[name] or (name != QUALITY and value.shape[0] != len(batch)):
                    raise ModelOutputError(f"model produced invalid output: {name} of shape {list(value.shape)} "
                                           f"for {len(batch)} tiles (expected {widths[name]} per tile)")
                parts[name].append(value.reshape(len(batch), widths[name]))
        joined = {name: (np.concatenate(values) if values else np.zeros((0, widths[name]), np.float32))
                  for name, values in parts.items()}
        quality = joined.get(QUALITY)
        return TileOutputs(joined[PROBS], None if quality is None else quality.reshape(-1), joined.get(PHASES))

    def _run_images(self, chunks: list[np.ndarray]) -> list[TileOutputs | str]:
        """Runs several images' tiles in shared runs; returns each image's outputs, or why they are unusable
        (a run that fails, or outputs of the wrong shape, fail every image in it)."""
        try:
            outputs = self.run(np.concatenate(chunks))
        except ModelOutputError as exc:
            return [str(exc)] * len(chunks)
        bounds = np.cumsum([0] + [len(c) for c in chunks]).tolist()
        bad_before = [0, *np.cumsum(invalid_rows(outputs)).tolist()]  # invalid tiles before each row
        images: list[TileOutputs | str] = []
        for a, b in zip(bounds[:-1], bounds[1:]):
            rows = outputs.rows(a, b)
            images.append(output_problem(rows) if bad_before[b] > bad_before[a] else rows)
        return images

    def judge(self, outputs: TileOutputs, boxes: Sequence[Box]) -> Judgement:
        """One image's scores from its tiles' outputs: aggregated, then weighed by grid evidence when the model
        has a grid gate. No tile, or no detail in any: clean, by lack of evidence."""
        labels = self.labels
        evidence = None
        if self.grid_gate is not None:
            evidence = image_evidence(outputs.phases, boxes, self.info.phase_grids, self.info.tile_size)
        if len(outputs) == 0 or (evidence is not None and evidence.word == "none"):
            return ({label: float(label == CLEAN) for label in labels} if CLEAN in labels
                    else {label: 1.0 / len(labels) for label in labels}), evidence
        dist = aggregate(outputs.probs, self.aggregation, labels.index(CLEAN) if CLEAN in labels else None)
        scores = {label: float(p) for label, p in zip(labels, dist)}
        if evidence is not None and CLEAN in labels:
            for label in labels:
                if label != CLEAN:
                    kept = scores[label] * self.grid_gate.factor(label, evidence)
                    scores[CLEAN] += scores[label] - kept
                    scores[label] = kept
        return scores, evidence

    def judge_first(self, first: TileOutputs, boxes: Sequence[Box]) -> Optional[Judgement]:
        """With early stopping: an image's judgement on the outputs of its first tiles (`first`) when it settles
        the image (`EarlyStop.decided`); None when its other tiles must be scored too, or there is nothing to stop
        (no early stopping, no other tile). `boxes`: all the image's, or at least one more than `first` has."""
        stop = self.early_stop
        if stop is None or len(boxes) <= len(first):
            return None
        judged = self.judge(first, boxes[: len(first)])
        return judged if stop.decided(judged[0][CLEAN]) else None

    def judge_as_scored(self, outputs: TileOutputs, boxes: Sequence[Box], lattice: Optional[LatticeCheck] = None,
                        colours: Optional[DecoderTrace] = None) -> dict[str, float]:
        """The scores `score` gives an image, from the stored outputs of ALL its tiles (calibration and
        benchmarks score every tile once, then try settings): early stopping is applied as scoring does, the
        table check where `lattice` makes it (e.g. `lambda o, e: scorer.table_check(o, e, tiles)[0]`) and the
        decoder check where `colours` (`decoder_trace(pixels_read(tiles))`) are given."""
        stop = self.early_stop
        first = outputs.rows(0, stop.first_tiles) if stop is not None else outputs
        judged = self.judge_first(first, boxes) if stop is not None else None
        scores, evidence = judged or self.judge(outputs, boxes)
        if lattice is not None and lattice(first if judged else outputs, evidence):
            scores = proven(scores, JPEG)
        decoder = self.decoder_proof(scores, lambda: colours) if colours is not None else None
        return proven(scores, decoder) if decoder else scores

    def decoder_proof(self, scores: dict[str, float], colours: Callable[[], DecoderTrace]) -> Optional[str]:
        """The decoder check (see DECODER_MIN_LOSSY): the label whose decoder made the image's colours (`colours`,
        asked only where the scores see a lossy trace), or None."""
        if CLEAN not in scores or 1.0 - scores[CLEAN] < DECODER_MIN_LOSSY:
            return None
        codec = colours().proven
        return codec if codec in self.labels else None

    def table_check(self, outputs: TileOutputs, evidence: Optional[ImageEvidence],
                    tiles: Tiles) -> tuple[bool, Optional[TableEstimate]]:
        """The table check (see LATTICE_EVIDENCE) on the outputs and evidence an image's scores stand on: (whether
        its JPEG table shows as a lattice, the table read from `tiles`, every tile chosen, where it was read on the
        image's 8x8 grid vote or holds; else None). It does not depend on the gate or the threshold.

        Read only where the tiles lean JPEG before the gate, or the 8x8 quadrants agree well
        (LATTICE_AGREEMENT_ANY_LEAN): at the 8x8 grid's modal phase when enough quadrants vote with some agreement;
        else at the image's origin, where a JPEG saved whole has its grid (too few quadrants vote in small images
        and single textured patches; they disagree where every textured block clips, as text on white does). The
        origin being a guess, and one smooth tile all there may be, the lattice must then span
        LATTICE_MIN_FREQUENCIES."""
        if JPEG not in self.labels or CLEAN not in self.labels or evidence is None or evidence.word == "none" \
                or not len(outputs):
            return False, None
        vote = evidence.grids.get(JPEG_GRID)
        on_grid = vote is not None and vote.checkable and vote.agreement >= LATTICE_MIN_AGREEMENT
        head = aggregate(outputs.probs, self.aggregation, self.labels.index(CLEAN))
        leaning = float(head[self.labels.index(JPEG)]) >= LATTICE_MIN_JPEG_P
        if not leaning and not (on_grid and vote.agreement >= LATTICE_AGREEMENT_ANY_LEAN):
            return False, None
        if not leaning:  # a long shot (pixel art agrees on every grid): the first tiles alone, read economically
            tiles = Tiles(tiles.pixels[:FIRST_TABLE_TILES], tiles.boxes[:FIRST_TABLE_TILES])
        table = self.jpeg_table(tiles, vote.offset if on_grid else (0, 0), long_shot=not on_grid or not leaning)
        held = table is not None and table.quality is not None and table.evidence >= LATTICE_EVIDENCE and (
            on_grid or table.frequencies_seen >= LATTICE_MIN_FREQUENCIES)
        return held, table if held or on_grid else None  # read at the origin: a guess, kept only if it holds

    def result(self, tiles: Tiles, size: tuple[int, int], outputs: TileOutputs, path: Optional[str] = None,
               table_tiles: Optional[Tiles] = None, judged: Optional[Judgement] = None,
               checks: bool = True) -> ScoreResult:
        """One image's result from the outputs of the tiles it stands on (`judged`: their judgement, when
        already made); a JPEG's quantisation table is read from `table_tiles` (every tile chosen, scored or not;
        default `tiles`). Without `checks`, no table, decoder or WebP-step read: the model and its gate alone."""
        labels = self.labels
        scores, evidence = judged or self.judge(outputs, tiles.boxes)
        # Whatever the threshold: the scores are the image's, the threshold only labels them (records scored at
        # one threshold label as a run at another would).
        lattice, table = self.table_check(outputs, evidence, table_tiles or tiles) if checks else (False, None)
        if lattice:
            scores = proven(scores, JPEG)
        decoder = self.decoder_proof(scores, lambda: decoder_trace(pixels_read(table_tiles or tiles))) \
            if checks else None
        if decoder:
            scores = proven(scores, decoder)
        label = decide(scores, self.threshold)
        probs, quality = outputs.probs, outputs.quality
        image_quality, source = None, None
        if quality is not None and label != CLEAN and len(quality):
            # Tiles weigh in by how sure they are of the damage: clean tiles have no quality to report.
            weight = 1.0 - probs[:, labels.index(CLEAN)] if CLEAN in labels else np.ones(len(probs))
            image_quality, source = float(np.average(quality, weights=weight + 1e-6)), "model"
        if label != JPEG:
            table = None
        elif table is None and checks:
            table = self.jpeg_table(table_tiles or tiles, grid_offset(evidence))
        if table is not None and table.kind == "ijg":
            image_quality, source = float(table.quality), "table"  # exact where IJG lattices hold
        elif table is not None and table.kind == "custom" and image_quality is not None:
            # Two independent guesses, each off by 6-8 on jpegli and mozjpeg tables: their mean by about 5-6.
            image_quality, source = (image_quality + table.nearest_quality) / 2.0, "both"
        webp = self.webp_quality(table_tiles or tiles, evidence) if label == WEBP and checks else None
        if webp is not None and (image_quality is None or abs(webp.quality - image_quality) <= WEBP_MAX_DISAGREEMENT):
            image_quality, source = webp.quality, "steps"
        tile_scores = [
            TileScore(box, {l: float(p) for l, p in zip(labels, row)}, None if quality is None else float(quality[k]))
            for k, (box, row) in enumerate(zip(tiles.boxes, probs))
        ]
        return ScoreResult(label, scores, image_quality, tile_scores, size, path, evidence, source, table,
                           webp=webp, decoder=decoder)

    @staticmethod
    def webp_quality(tiles: Tiles, evidence: Optional[ImageEvidence]) -> Optional[WebPQualityEstimate]:
        """A WebP's quality read from the quantiser steps on its tiles' 4x4 grids, or None where they show none.

        Read first where the image's 4x4 quadrants vote the grid to be, when that is off the origin (a WebP
        cropped since: its macroblocks then start at an unknown multiple of 4, read as if at the vote), then at
        the origin, where VP8's macroblocks start. A WebP saved whole whose vote is off (about 1 in 20) shows no
        step there (eval-wild-cal's WebP quality MAE unchanged); read at the origin, a cropped WebP shows none
        for most images, but a coarse step for 5 of eval-wild-cal's 120 (13 of eval-wild's), 30 points off."""
        vote = evidence.grids.get(WEBP_GRID) if evidence is not None else None
        origins = [vote.offset] if vote is not None and vote.checkable and vote.offset != (0, 0) else []
        own = pixels_read(tiles)
        for origin in origins + [(0, 0)]:
            read = estimate_webp_quality(own, tile_grid_offsets(tiles.boxes[: len(own)], origin, MACROBLOCK))
            if read is not None:
                return read
        return None

    @staticmethod
    def jpeg_table(tiles: Tiles, offset: Optional[tuple[int, int]], long_shot: bool = False) -> Optional[TableEstimate]:
        """The luma quantisation table read from the tiles on the 8x8 grid whose blocks start at `offset` (row,
        column, image coordinates; None: no grid, no table; `long_shot`: most likely no table there, as at a
        guessed offset or where the tiles do not lean JPEG)."""
        if offset is None:
            return None
        offsets, own = tile_grid_offsets(tiles.boxes, offset, JPEG_GRID), tiles.own()
        # The most textured tiles come first: the first two settle most images; the others (up to TABLE_PIXELS,
        # whatever the model's tiling) are read only when those two show no table (art clipped on white); for a
        # `long_shot`, not when their unclipped blocks showed there is none (clean art, most likely, whose reads
        # would cost more than its scoring).
        count = tiles_read(own)
        table = estimate_luma_table(own[:FIRST_TABLE_TILES], offsets[:FIRST_TABLE_TILES], long_shot)
        # (`kind` estimates every frequency's step: most of a read's cost, so asked last.)
        if count > FIRST_TABLE_TILES and not (long_shot and table.lattice_free) and table.kind is None:
            table = estimate_luma_table(own[:count], offsets[:count], long_shot)
        return table

    def score(self, image: ImageInput) -> ScoreResult:
        """Scores one image: a path, a PIL image, or an RGB uint8 array. `ModelOutputError` when the model's
        outputs for it are unusable."""
        tiles, size = self.tile(image, cut_on_read=True)
        path = str(image) if isinstance(image, (str, os.PathLike)) else None
        result = succeeded(self.score_together([(path, tiles, size)])[0])
        return result.with_container(read_container(path)) if path is not None else result

    def heatmap(self, image: ImageInput, display_side: Optional[int] = None) -> "Heatmap":
        """Every textured cell of the model's tile grid scored: `Heatmap` with the per-cell probabilities
        (`.probs` [rows, cols, C], NaN where a cell has no texture), `.quality`, `.boxes`, the image's own
        `.result`, and `.picture`, a PIL image of the cells coloured by P(lossy), codec by hue, with a legend."""
        from .heatmap import DISPLAY_SIDE, compute_heatmap

        return compute_heatmap(self, image, display_side or DISPLAY_SIDE)

    def score_together(self, items: Sequence[tuple[Optional[str], Tiles, tuple[int, int]]]
                       ) -> list[ScoreResult | ScoreFailure]:
        """Scores already-tiled images with shared session runs; results in input order.

        An image whose model outputs are unusable (NaN, negative, not summing to 1, the wrong shape, a run that
        fails) gets a `ScoreFailure`, never a decision; the other images of the batch are scored as usual.
        With early stopping, one run takes the first tiles of every image and a second one the other tiles
        of the images still undecided, so a result never depends on which images share a batch.
        """
        results = self._score_together(items)
        if self.halve_upscaled and self.grid_gate is not None:  # a halved verdict stands on the gate's grid votes
            self._judge_halved(items, results)
            self._judge_upscaled(items, results)
        if self.find_downscaled:
            reads = [TileReads(tiles) for _, tiles, _ in items]  # each read once for all three judgements
            self._judge_downscaled(results, reads)
            self._judge_chroma(results, reads)
            if self._judge_applies():
                self._judge_resized(items, results, reads)
        return results

    def resized_inputs(self, image: ImageInput, result: ScoreResult) -> Optional[np.ndarray]:
        """The resized-damage judge's inputs (`resized.resized_features`) for a scored image (its `result`), re-tiled
        here; None where it has no scored tiles or no tile to read. The judge's fitting reads them so."""
        tiles, size = self.tile(image)
        return self._resized_inputs(TileReads(tiles), size, result)

    @staticmethod
    def _resized_inputs(reads: TileReads, size: tuple[int, int], result: ScoreResult) -> Optional[np.ndarray]:
        if not result.tiles:
            return None
        return resized_features(reads.own, reads.tiles.boxes, size, Scorer._mean_tile_clean(result), reads.sharpness,
                                reads.luma_peak, reads.chroma_peaks)

    def _judge_downscaled(self, results: list[ScoreResult | ScoreFailure], reads: list[TileReads]) -> None:
        """Images judged clean (or WebP or AVIF: `_may_rename_downscaled`), with detail, whose scored tiles lean lossy
        before the gate (DOWNSCALED_MAX_TILE_CLEAN) and whose tiles (all of them: the early stop leaves most unread)
        show a JPEG's block grid downscaled (`resized.GridPeak.shows_grid` at DOWNSCALED_MIN_PEAK) become JPEG's:
        their scores `proven` JPEG's, evidence "downscaled" with the grid's period, no quality (a resize leaves no
        table to read, and the head never learnt resized damage). WebP and AVIF verdicts that nothing proved and the
        head doubts, or whose grid peaks far over those codecs' own (`_renames_by_grid_alone`), are judged so too
        (`_may_rename_downscaled`; they keep the head's quality, approximate), though
        not at a period VP8's and AV1's 16 px blocks show (DOWNSCALED_RENAME_AVOID: nor where the head leans WebP or
        AVIF yet the threshold called the image clean). Judged at this threshold: these records, like halved ones, do
        not relabel at another threshold as a run there would."""
        for k, result in enumerate(results):
            if not self._may_be_resized_jpeg(result):
                continue
            renaming = result.flagged
            if renaming and not self._may_rename_downscaled(result):
                continue
            if self._mean_tile_clean(result) > DOWNSCALED_MAX_TILE_CLEAN:
                continue  # asked first: most clean art is settled here, without cutting its other tiles
            peak = reads[k].luma_peak
            if peak is None:
                continue
            shown = peak.shows_grid(DOWNSCALED_MIN_PEAK)
            if renaming:  # where the head hesitates, as clean art is judged; however sure, by the grid alone
                hesitating = result.scores[CLEAN] >= DOWNSCALED_RENAME_MIN_CLEAN
                shown = shown and hesitating or self._renames_by_grid_alone(peak)
            if not shown:
                continue
            likeliest = max((label for label in result.scores if label != CLEAN), key=result.scores.get)
            avoided, within = DOWNSCALED_RENAME_AVOID
            if likeliest in DOWNSCALED_RENAME and abs(peak.period - avoided) <= within:
                continue
            # a renamed verdict keeps the head's quality (approximate, as on halved tiles)
            self._as_resized_jpeg(result, keep_quality=renaming, downscaled_period=peak.period, downscaled_plane="luma")

    def _judge_chroma(self, results: list[ScoreResult | ScoreFailure], reads: list[TileReads]) -> None:
        """Images still judged clean, with detail, whose scored tiles lean lossy at all before the gate
        (CHROMA_MAX_TILE_CLEAN) become JPEG's where their tiles' chroma is softer than their luma
        (`resized.chroma_sharpness` under CHROMA_MAX_SHARPNESS: chroma subsampled by a codec, then resized; evidence
        "chroma" with the sharpness), or softer at all (CHROMA_GRID_MAX_SHARPNESS) and showing a JPEG's grid
        downscaled in Cb or Cr well over luma's peak (`resized.chroma_grid_peak`, CHROMA_GRID_MIN_PEAK,
        CHROMA_GRID_OVER_LUMA), not as a gradient's steps (CHROMA_GRID_MAX_DRAWN, CHROMA_GRID_DRAWN_LUMA; evidence
        "downscaled" in chroma, with the period and the sharpness): their scores
        `proven` JPEG's, no quality. Judged at this threshold, like downscaled ones."""
        for k, result in enumerate(results):
            if not self._may_be_resized_jpeg(result) or result.flagged:
                continue
            if self._mean_tile_clean(result) > CHROMA_MAX_TILE_CLEAN:
                continue  # asked first: most clean art is settled here, without cutting its other tiles
            sharpness = reads[k].sharpness
            if sharpness is None:
                continue
            if sharpness < CHROMA_MAX_SHARPNESS:
                self._as_resized_jpeg(result, keep_quality=False, chroma_sharpness=sharpness)
                continue
            if sharpness >= CHROMA_GRID_MAX_SHARPNESS:
                continue
            grid = chroma_grid_peak(reads[k].own, reads[k].tiles.boxes, CHROMA_GRID_MIN_PEAK, reads[k].chroma_peaks)
            if grid is None:
                continue
            luma = reads[k].luma_peak  # never None where chroma's was read: the same tiles
            if luma is None or (grid.drawn > CHROMA_GRID_MAX_DRAWN and luma.strength < CHROMA_GRID_DRAWN_LUMA):
                continue  # a gradient's steps, not blocks
            if grid.strength >= CHROMA_GRID_OVER_LUMA * luma.strength:
                self._as_resized_jpeg(result, keep_quality=False, downscaled_period=grid.period,
                                      downscaled_plane="chroma", chroma_sharpness=sharpness)

    def _judge_resized(self, items: Sequence[tuple[Optional[str], Tiles, tuple[int, int]]],
                       results: list[ScoreResult | ScoreFailure], reads: list[TileReads]) -> None:
        """Images still judged clean, with detail, whose scored tiles lean lossy at all (JUDGE_MAX_TILE_CLEAN) and
        whom the resized-damage judge flags become JPEG's: evidence "downscaled" at the period of the plane whose
        peak is strongest, with the judge's probability; no quality. Judged at this threshold, like downscaled
        ones. With the appearance network set, the judge is asked only where it scores JUDGE_MIN_APPEARANCE or more
        (or has no cells). Those the judge and the blocks leave clean, and those leaning lossy more faintly than the
        judge asks (APPEARANCE_MAX_TILE_CLEAN), are asked of the appearance network, where it is set; WebP and AVIF
        verdicts nothing proved become JPEG's where both flag them (`asks_rename`; the head's quality kept)."""
        network = self.resized_appearance
        for k, result in enumerate(results):
            # the network's score, read once, first: it decides whether the judge is asked (JUDGE_MIN_APPEARANCE)
            asked = network is not None and (self.asks_resized(result) or self.asks_appearance(result)
                                              or self.asks_rename(result))
            score = network.score_image(reads[k].own, reads[k].tiles.whole) if asked else None
            if self.asks_resized(result) and (score is None or score >= JUDGE_MIN_APPEARANCE):
                self._judge_by_judge(result, reads[k], items[k][2])
            if network is not None and self.asks_appearance(result):
                self._judge_appearance(result, reads[k], items[k][2], score)
            elif network is not None and self.asks_rename(result):
                self._rename_by_both(result, reads[k], items[k][2], score)

    def _judge_by_judge(self, result: ScoreResult, reads: TileReads, size: tuple[int, int]) -> None:
        """The judge's verdict on one asked record; the blocks' read where it leans without flagging."""
        judge = self.resized_judge
        assert judge is not None
        values = self._resized_inputs(reads, size, result)
        if values is None:  # no tile to read
            return
        probability = judge.probability(values)
        if judge.flags(probability):
            self._as_resized_at_peak(result, values, downscaled_judged=probability)
        elif probability >= BLOCKS_MIN_JUDGED:
            self._judge_blocks(result, reads, size, probability)

    def _judge_appearance(self, result: ScoreResult, reads: TileReads, size: tuple[int, int], score: Optional[float]
                          ) -> None:
        """An image still clean becomes JPEG's where the resized-damage appearance network flags it (`score`, the
        network's `score_image`: its tiles' most textured cells, a small image's whole pixels too): evidence
        "downscaled" at the strongest plane's period (as the judge's, read only then), with the network's score; no
        quality."""
        if self.resized_appearance.flags(score):
            values = self._resized_inputs(reads, size, result)
            if values is not None:  # None: no tile the grid reads take (resized.MIN_TILE_SIDE each way)
                self._as_resized_at_peak(result, values, downscaled_appearance=score)

    def _rename_by_both(self, result: ScoreResult, reads: TileReads, size: tuple[int, int], score: Optional[float]
                        ) -> None:
        """A WebP or AVIF verdict nothing proved becomes JPEG's where the appearance network (`score`, its score) and
        then the judge both flag it (`asks_rename`): evidence "downscaled" at the strongest plane's period, with both
        scores; the head's quality kept (approximate), as the grid's rename keeps it: `--flag-below` counts the
        record as it did called WebP."""
        judge, appearance = self.resized_judge, self.resized_appearance
        assert judge is not None and appearance is not None
        if not appearance.flags(score):
            return
        values = self._resized_inputs(reads, size, result)
        if values is None:
            return
        probability = judge.probability(values)
        if judge.flags(probability):
            self._as_resized_at_peak(result, values, keep_quality=True, downscaled_judged=probability,
                                     downscaled_appearance=score)

    def _as_resized_at_peak(self, result: ScoreResult, values: np.ndarray, keep_quality: bool = False,
                            **evidence) -> None:
        """`_as_resized_jpeg` at the period of the strongest plane's peak in the judge's inputs `values`."""
        period, plane = resized_period(values)
        self._as_resized_jpeg(result, keep_quality=keep_quality, downscaled_period=period, downscaled_plane=plane,
                              **evidence)

    def _judge_blocks(self, result: ScoreResult, reads: TileReads, size: tuple[int, int], judged: float) -> None:
        """An image the judge leans on without flagging becomes JPEG's where its tiles' luma, resampled back by 1/s at
        one of its planes' peak periods (luma's, Cb's, Cr's; the strongest first), agrees on one 8x8 phase
        (BLOCKS_MIN_AGREEMENT, or fewer windows where the judge leans further: BLOCKS_LEANING_JUDGED; where the tiles
        give too few windows, a small image's whole pixels, split into windows: BLOCKS_WHOLE_MIN_AGREEMENT): evidence
        "downscaled" at that period (its plane the one whose peak gave it), the windows agreeing and read."""
        for period, plane in reads.read_back_periods():
            found = self.blocks_agree(reads, size, period, judged)
            if found is not None:
                agreement, read_on = found
                self._as_resized_jpeg(result, keep_quality=False, downscaled_period=period, downscaled_plane=plane,
                                      downscaled_blocks=(agreement.agreeing, agreement.read),
                                      downscaled_blocks_from=read_on)
                return

    @staticmethod
    def blocks_agree(reads: TileReads, size: tuple[int, int], period: float, judged: float
                     ) -> Optional[tuple[BackAgreement, str]]:
        """The blocks' read back at one period, judged by `_judge_blocks`'s rules (the judge's probability
        `judged`): the agreement that meets them and what it was read on ("tiles" or "whole"), or None."""
        whole = reads.tiles.whole
        agreement, read_on = back_agreement(reads.own, reads.tiles.boxes, size, period), "tiles"
        found = agreement.agrees(BLOCKS_MIN_AGREEMENT) or (
            judged >= BLOCKS_LEANING_JUDGED and agreement.agrees(BLOCKS_LEANING_AGREEMENT, BLOCKS_LEANING_WINDOWS))
        if not found and agreement.read < MIN_WINDOWS and whole is not None:  # a small image: all of it read
            agreement, read_on = back_agreement([whole], [(0, 0, *size)], size, period, split=True), "whole"
            found = agreement.agrees(BLOCKS_WHOLE_MIN_AGREEMENT, BLOCKS_WHOLE_MIN_WINDOWS)
        return (agreement, read_on) if found else None

    def asks_resized(self, result: ScoreResult | ScoreFailure) -> bool:
        """Whether `_judge_resized` may ask the judge about a record (as it stands before): still clean, with detail,
        no other codec proven, scored tiles leaning lossy at all (JUDGE_MAX_TILE_CLEAN); where the appearance network
        is set, it asks only where that scores the image JUDGE_MIN_APPEARANCE or more (or cannot score it)."""
        return self._asks(result, JUDGE_MAX_TILE_CLEAN)

    def asks_appearance(self, result: ScoreResult | ScoreFailure) -> bool:
        """Whether `_judge_resized` asks the appearance network about a record (as the judge and the blocks leave it):
        the judge's gate at APPEARANCE_MAX_TILE_CLEAN (whether the network is set is the caller's to check). The
        network's training counts its calibration images so, on a Scorer without it (whose judge is asked without the
        network's cut: see JUDGE_MIN_APPEARANCE)."""
        return self._asks(result, APPEARANCE_MAX_TILE_CLEAN)

    def asks_rename(self, result: ScoreResult | ScoreFailure) -> bool:
        """Whether `_judge_resized` asks the judge and the appearance network to rename a record: a WebP or AVIF
        verdict, with detail, that no WebP step, decoder or halving read proved (`_may_rename_downscaled`). A JPEG
        downscaled after compression that the head and its gate call so becomes JPEG's where both flag it, each at its
        own threshold (session 26). Of such verdicts on the calibration set, both flagged JPEG then downscaled 10 of 17
        (colour 4 of 4, grey 1 of 7, line art 5 of 6) and WebP then downscaled 2 of 10, none of the 47 on AVIF, JPEG XL
        and grey WebP images nor the 32 on clean ones (either alone would rename 12 of the 42 AVIF); on its seed-61
        draw 10 of 13 and none of 32 clean. Proven verdicts, nearly all of a WebP's or an AVIF's, are not asked."""
        return self._may_judge(result) and result.flagged and self._may_rename_downscaled(result)

    def _asks(self, result: ScoreResult | ScoreFailure, max_tile_clean: float) -> bool:
        return self._may_judge(result) and not result.flagged and self._mean_tile_clean(result) <= max_tile_clean

    def _may_judge(self, result: ScoreResult | ScoreFailure) -> bool:
        """The judge applies, and the record is scored, with detail and tiles, no other codec proven."""
        return (self.find_downscaled and self._judge_applies() and self._may_be_resized_jpeg(result)
                and bool(result.tiles))

    @staticmethod
    def _mean_tile_clean(result: ScoreResult) -> float:
        """The scored tiles' mean P(clean) before the gate: how far the head leans lossy."""
        return float(np.mean([tile.scores[CLEAN] for tile in result.tiles]))

    @staticmethod
    def _may_be_resized_jpeg(result: ScoreResult | ScoreFailure) -> bool:
        """Whether the downscaled, chroma and judged judgements may ask about a record: scored, with detail, and no
        decoder check that proved another codec (yet clean at a lenient threshold: its own)."""
        return (isinstance(result, ScoreResult) and result.evidence is not None
                and result.evidence.detailed_tiles > 0 and result.decoder in (None, JPEG))

    def _as_resized_jpeg(self, result: ScoreResult, keep_quality: bool, **evidence) -> bool:
        """Makes a record JPEG's, found resized (`evidence`: the ImageEvidence fields that say how): its scores
        `proven` JPEG's, the quality null unless kept (a resize leaves no table to read, and the head never learnt
        resized damage). Left as it was (False) where this threshold still calls the proven scores clean (one that
        wants P(clean) under 0.1 x its own)."""
        scores = proven(result.scores, JPEG)
        label = decide(scores, self.threshold)
        if label == CLEAN:
            return False
        result.scores, result.label = scores, label
        result.evidence = replace(result.evidence, **evidence)
        if not keep_quality:
            result.quality = result.quality_source = None
        return True

    @staticmethod
    def _may_rename_downscaled(result: ScoreResult) -> bool:
        """Whether a flagged verdict may become a downscaled JPEG's (DOWNSCALED_RENAME): WebP or AVIF, no step or
        decoder read proving it. Where the head is sure, only a grid far over the codec's own renames it
        (`_renames_by_grid_alone`)."""
        return (result.label in DOWNSCALED_RENAME and result.webp is None and result.decoder is None
                and not result.evidence.halvings)

    @staticmethod
    def _renames_by_grid_alone(peak: GridPeak) -> bool:
        """Whether luma's grid peak renames a WebP or AVIF verdict, however sure the head: it repeats as a grid far
        over those codecs' own peaks (DOWNSCALED_RENAME_SURE_PEAK), away from where their blocks fold
        (DOWNSCALED_RENAME_SURE_PERIODS). A JPEG damaged this much shows its grid in all its pixels, smooth or not,
        as a drawn texture does (`GridPeak.shows_grid` reads that as art): the verdict is lossy already."""
        low, high = DOWNSCALED_RENAME_SURE_PERIODS
        return peak.repeats_as_grid(DOWNSCALED_RENAME_SURE_PEAK) and low <= peak.period <= high

    def _judge_halved(self, items: Sequence[tuple[Optional[str], Tiles, tuple[int, int]]],
                      results: list[ScoreResult | ScoreFailure]) -> None:
        """Images judged clean that carry halved tiles (`Tiles.halved`) are judged again on those, in shared runs:
        halved from the origin, then where the pairs likely start (`Tiles.alternative`), then the one from the pairs
        halved again, from its origin and its pairs (upscaled x4; `tiling.halvings` gives the order), until damage
        is found; that replaces the result (`_as_halved`: evidence "halved", tile boxes in image pixels).
        On the halved tiles only the model and its gate judge: the table, decoder and WebP-step reads assume the
        codec's own pixels, and the quality is the head's, approximate. The halved image's quadrants must agree on a
        grid (HALVED_MIN_AGREEMENT, HALVED_MIN_VOTES); where its 8x8 grid agrees (HALVED_JPEG_AGREEMENT), the damage
        is JPEG's, and halved twice only that grid decides (HALVED_TWICE_ONLY_JPEG_SCALE).
        Judged only where clean at this threshold: these records, unlike others, do not relabel at another threshold
        as a run there would."""
        queues = {k: [t for level in halvings(items[k][1]) for t in level if t.more_than(0) and not t.stepping_stone]
                  for k, result in enumerate(results) if isinstance(result, ScoreResult) and not result.flagged}
        queues = {k: queue for k, queue in queues.items() if queue}
        while queues:  # one candidate of every image still clean per shared run
            candidates = {k: queue.pop(0) for k, queue in queues.items()}
            judged = self._score_together([(items[k][0], halved, items[k][2]) for k, halved in candidates.items()],
                                          checks=False)
            for (k, halved), result in zip(candidates.items(), judged):
                if isinstance(result, ScoreResult) and result.flagged and any(
                        v.voting >= HALVED_MIN_VOTES and v.agreement >= HALVED_MIN_AGREEMENT
                        for v in result.evidence.grids.values()) and (
                        halved.scale < HALVED_TWICE_ONLY_JPEG_SCALE or self._shows_jpeg_grid(result)):
                    results[k] = self._as_halved(result, items[k][2], halved)
            queues = {k: queue for k, queue in queues.items() if queue and not results[k].flagged}

    def _shows_jpeg_grid(self, result: ScoreResult, min_votes: int = 0) -> bool:
        """Whether a halved (or resampled) judgement's quadrants agree on JPEG's 8x8 grid (HALVED_JPEG_AGREEMENT),
        among `min_votes` votes or more."""
        vote = result.evidence.grids.get(JPEG_GRID) if JPEG in self.labels else None
        return vote is not None and vote.checkable and vote.voting >= min_votes \
            and vote.agreement >= HALVED_JPEG_AGREEMENT

    def _as_halved(self, result: ScoreResult, size: tuple[int, int], halved: Tiles) -> ScoreResult:
        """A verdict found on `halved` tiles as the image's: JPEG's where the 8x8 grid agrees, tile boxes back in
        image pixels (the tiles' `scale` and `origin`: where the halving's blocks start), evidence "halved"."""
        if self._shows_jpeg_grid(result):
            result.scores = proven(result.scores, JPEG)
            result.label = decide(result.scores, self.threshold)
        (width, height), (x, y), scale = size, halved.origin, halved.scale
        result.tiles = [TileScore((scale * l + x, scale * t + y, min(width, scale * r + x), min(height, scale * b + y)),
                                  tile.scores, tile.quality) for tile in result.tiles for l, t, r, b in [tile.box]]
        result.evidence = replace(result.evidence, halvings=scale.bit_length() - 1, halved_from=halved.origin)
        return result

    def _judge_upscaled(self, items: Sequence[tuple[Optional[str], Tiles, tuple[int, int]]],
                        results: list[ScoreResult | ScoreFailure]) -> None:
        """Images still judged clean that carry tiles of themselves resampled back to sizes they may have been
        upscaled from (`Tiles.unscaled`, by a factor other than 2 or 4: `tiling.unscaled_tiles`) are judged on those,
        one size of every image per shared run, most likely first, until damage is found on a JPEG's agreeing 8x8
        grid (HALVED_JPEG_AGREEMENT, among HALVED_MIN_VOTES votes or more: a size a little off shows damage without
        it, and clean art resampled to a wrong size shows other grids). That replaces the result: JPEG's, evidence
        "upscaled" with the factor, tile boxes in image pixels, the quality the head's on the resampled pixels
        (approximate). Only the model and its gate judge,
        as on halved tiles. Judged only where clean at this threshold, as the halved judgement."""
        queues = {k: list(items[k][1].unscaled) for k, result in enumerate(results)
                  if isinstance(result, ScoreResult) and not result.flagged and items[k][1].unscaled}
        while queues:
            candidates = {k: queue.pop(0) for k, queue in queues.items()}
            judged = self._score_together([(items[k][0], back, items[k][2]) for k, back in candidates.items()],
                                          checks=False)
            for (k, back), result in zip(candidates.items(), judged):
                if isinstance(result, ScoreResult) and result.flagged \
                        and self._shows_jpeg_grid(result, HALVED_MIN_VOTES) \
                        and self._as_resized_jpeg(result, keep_quality=True, upscaled_by=back.factor):
                    (width, height), (fx, fy) = items[k][2], back.factor
                    result.tiles = [TileScore((int(fx * l), int(fy * t), min(width, round(fx * r)),
                                               min(height, round(fy * b))), tile.scores, tile.quality)
                                    for tile in result.tiles for l, t, r, b in [tile.box]]
                    results[k] = result
            queues = {k: queue for k, queue in queues.items() if queue and not results[k].flagged}

    def _score_together(self, items: Sequence[tuple[Optional[str], Tiles, tuple[int, int]]], checks: bool = True
                        ) -> list[ScoreResult | ScoreFailure]:
        """`score_together` without the halved judgement; `checks`: the table, decoder and WebP-step reads."""
        if not items:
            return []
        stop = self.early_stop
        # Tiles are read only as far as needed (`tiling.CutOnRead` cuts them then): the first ones, then whether there
        # are more, then the rest for the images still undecided.
        per_image = self._run_images([tiles.first(stop.first_tiles) if stop else tiles.pixels
                                      for _, tiles, _ in items])
        settled: dict[int, Judgement] = {}  # images decided on their first tiles, judged once
        if stop is not None:
            undecided = []
            for k, out in enumerate(per_image):
                if isinstance(out, str) or not items[k][1].more_than(len(out)):
                    continue
                judged = self.judge_first(out, items[k][1].first_boxes(len(out) + 1))
                if judged is None:
                    undecided.append(k)
                else:
                    settled[k] = judged
            if undecided:
                more = self._run_images([items[k][1].pixels[stop.first_tiles :] for k in undecided])
                for k, extra in zip(undecided, more):
                    per_image[k] = extra if isinstance(extra, str) else per_image[k] + extra
        results: list[ScoreResult | ScoreFailure] = []
        for k, ((path, tiles, size), out) in enumerate(zip(items, per_image)):
            if isinstance(out, str):
                results.append(ScoreFailure(out, path))
                continue
            scored = Tiles(tiles.first(len(out)), tiles.first_boxes(len(out)))  # the tiles the result stands on
            results.append(self.result(scored, size, out, path, table_tiles=tiles, judged=settled.get(k),
                                       checks=checks))
        return results

    def score_tiled(self, items: Iterable[tuple[Optional[str], Tiles, tuple[int, int]]]) -> Iterator[ScoreResult]:
        """Scores already-tiled images, batching tiles of many images into shared runs, in input order.
        Unusable model outputs raise `ModelOutputError`."""
        return map(succeeded, self._score_stream(items))

    def score_many(self, images: Iterable[ImageInput]) -> Iterator[ScoreResult | ScoreFailure]:
        """Scores several images with shared session runs, lazily, in input order. Each image gets its
        `ScoreResult`, or a `ScoreFailure` (`.error`, one line; `.path`) when it cannot be decoded or the model's
        outputs for it are unusable: one bad image never ends the others' scoring."""
        def tiled():
            for image in images:
                path = str(image) if isinstance(image, (str, os.PathLike)) else None
                try:
                    tiles, size = self.tile(image)
                except ImageError as exc:
                    yield ScoreFailure(without_path(one_line(exc, path), path), path)
                    continue
                yield path, tiles, size

        return (r.with_container(read_container(r.path)) if r.path is not None else r
                for r in self._score_stream(tiled()))

    def _score_stream(self, items: Iterable) -> Iterator[ScoreResult | ScoreFailure]:
        """Scores (path, tiles, size) items in shared runs of about `batch_size` tiles; `ScoreFailure`s among
        them pass through in place."""
        pending: list = []
        count = 0
        for item in items:
            pending.append(item)
            count += 0 if isinstance(item, ScoreFailure) else len(item[1].boxes)
            if count >= self.batch_size:
                yield from self._score_pending(pending)
                pending, count = [], 0
        yield from self._score_pending(pending)

    def _score_pending(self, pending: list) -> list[ScoreResult | ScoreFailure]:
        scored = iter(self.score_together([p for p in pending if not isinstance(p, ScoreFailure)]))
        return [p if isinstance(p, ScoreFailure) else next(scored) for p in pending]


def succeeded(result: ScoreResult | ScoreFailure) -> ScoreResult:
    """The result, or its failure raised as `ModelOutputError` (library calls that return results raise)."""
    if isinstance(result, ScoreFailure):
        raise ModelOutputError(result.error)
    return result
