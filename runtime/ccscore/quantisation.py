"""JPEG quantisation tables: the IJG (libjpeg) quality scale, and the luma table a decoded image still carries.

A JPEG decoder multiplies every quantised DCT coefficient by its step, so on the encoder's 8x8 grid the luma
DCT coefficients of the decoded pixels sit at multiples of each frequency's step, give or take the rounding of
the pixels (and of the colour conversion, which cancels in luma up to rounding and clipping). The step of a
frequency is the largest one that nearly all its clearly non-zero coefficients sit on. The quality is then the
IJG quality whose scaled Annex K table matches the estimated steps best; a table that matches none (jpegli,
mozjpeg, cameras, Photoshop) is "custom", reported with the nearest IJG quality.

Reading a file's own tables (its DQT segments) lives in ccscore.container; both fit qualities here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Optional, Sequence

import numpy as np

# ITU-T T.81 Annex K, tables K.1 (luminance) and K.2 (chrominance), in natural (row-major) order.
LUMA_BASE = np.array([
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
], dtype=np.int64).reshape(8, 8)  # fmt: skip
CHROMA_BASE = np.full((8, 8), 99, dtype=np.int64)
CHROMA_BASE[:4, :4] = np.array([[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]])

# DQT segments store a table in zigzag order: ZIGZAG[k] is the natural (row-major) index of the k-th entry.
ZIGZAG = np.array([
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14,
    21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53,
    60, 61, 54, 47, 55, 62, 63,
])  # fmt: skip

QUALITIES = np.arange(1, 101)


def ijg_table(base: np.ndarray, quality: int) -> np.ndarray:
    """libjpeg's jpeg_set_quality: the base table scaled for `quality` (1-100), baseline (steps 1-255)."""
    quality = min(max(int(quality), 1), 100)
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((base * scale + 50) // 100, 1, 255)


# [100, 8, 8]: the luma and chroma tables of every IJG quality.
IJG_LUMA = np.stack([ijg_table(LUMA_BASE, q) for q in QUALITIES])
IJG_CHROMA = np.stack([ijg_table(CHROMA_BASE, q) for q in QUALITIES])


@dataclass(frozen=True)
class QualityFit:
    """An IJG quality against a table. `error`: the mean relative step error over the compared steps (0: the
    exact IJG table); `exact`: every compared step equals the IJG one."""

    quality: int
    error: float
    exact: bool

    @classmethod
    def against(cls, steps: np.ndarray, known: np.ndarray, quality: int) -> "QualityFit":
        """How `steps` [8, 8] compare with IJG `quality`'s luma table where `known`."""
        table = IJG_LUMA[quality - 1][known]
        relative = np.abs(steps[known] - table) / table
        return cls(int(quality), float(relative.mean()), bool((relative == 0).all()))


def fit_quality(steps: np.ndarray, known: np.ndarray) -> Optional[QualityFit]:
    """The IJG quality (1-100) whose luma table is nearest to `steps` [8, 8] where `known`.

    Nearness is the mean of |log(step / table step)|: a step off by one counts for more where steps are small,
    as quality does. Ties go to the highest quality (steps of 1 saturate at the top)."""
    if not known.any():
        return None
    errors = np.abs(np.log(steps[known].astype(np.float64)) - np.log(IJG_LUMA[:, known].astype(np.float64))).mean(axis=1)
    best = len(errors) - 1 - int(np.argmin(errors[::-1]))
    return QualityFit.against(steps, known, int(QUALITIES[best]))


# ---------------------------------------------------------------- steps from pixels

# Coefficients below this magnitude are indistinguishable from a zero plus the decoder's rounding.
NONZERO = 1.25
# Spread of a decoded coefficient around its lattice point (pixel and colour rounding), in DCT units.
NOISE = 0.5
# Share of coefficients that sit on no lattice (clipping, chroma rounding, a second compression).
OUTLIERS = 0.05
# Clearly non-zero coefficients read per frequency: enough to tell lattices apart, few enough to stay cheap.
MAX_SAMPLES = 64
MAX_POOLED = 1024  # of them, pooled over the frequencies, for the fit over the 100 IJG qualities
# Fewer clearly non-zero coefficients than this at a frequency leave its step unknown.
MIN_SUPPORT = 8
MAX_STEP = 255
# Evidence per coefficient (see lattice_evidence) below which no lattice holds: resized and re-rendered images
# score about 0, IJG JPEGs 1.5-3 (measured on eval-wild-cal).
MIN_EVIDENCE = 0.5
# Clearly non-zero coefficients in unclipped blocks that, showing no lattice coarser than a step of 1 (evidence
# <= 0: clean art reads about -0.04), settle that a long-shot read (at a guessed grid, or where the tiles do not
# lean JPEG) has no table: clipped blocks are then not repaired, nor more tiles read, for one (on clean art that is
# most of a table read's cost). Otherwise they still are: a JPEG's unclipped blocks may read that low (smooth art,
# noisy coefficients).
LATTICE_FREE_SUPPORT = 256
# Steps of its own a table needs before it counts as a custom table.
MIN_CUSTOM_STEPS = 5


def lattice_evidence(values: np.ndarray, steps: np.ndarray, zero: bool = False) -> np.ndarray:
    """(float32) Log-likelihood ratio of clearly non-zero coefficients `values` sitting on non-zero multiples of
    `steps` (broadcast together) against no lattice at all: about log(step) for a coefficient on a lattice
    point, log(OUTLIERS) off it. Finer lattices explain more values but earn less for each, so the sum peaks at
    the true step. Zero is a lattice point only with `zero` (coefficients repaired from clipping, which may
    truly be zero): else near-flat noise would sit "on" every coarse lattice."""
    # In place, in two buffers the shape (and memory order) of the broadcast: the same operations as
    # written out, element for element, without a temporary per step.
    magnitude, steps = np.abs(np.asarray(values, np.float32)), np.asarray(steps, np.float32)
    residual = np.divide(magnitude, steps)
    np.round(residual, out=residual)
    np.maximum(residual, 0.0 if zero else 1.0, out=residual)  # the nearest multiple, not zero unless `zero`
    np.multiply(residual, steps, out=residual)
    np.subtract(magnitude, residual, out=residual)
    np.abs(residual, out=residual)
    scale = np.float32(-0.5 / NOISE**2)
    density = np.square(residual)
    np.multiply(density, scale, out=density)
    np.exp(density, out=density)
    # The other neighbouring multiple, where it is not zero.
    far = np.subtract(steps, residual, out=residual)
    np.square(far, out=far)
    np.multiply(far, scale, out=far)
    other = True if zero else magnitude >= steps
    np.exp(far, out=far, where=other)
    np.add(density, far, out=density, where=other)
    density *= steps * np.float32((1.0 - OUTLIERS) / (NOISE * np.sqrt(2 * np.pi)))
    density += np.float32(OUTLIERS)
    return np.log(density, out=density)


def _dct_matrix(n: int = 8) -> np.ndarray:
    """Orthonormal DCT-II: JPEG's forward DCT, whose coefficients are the ones a JPEG quantises."""
    k = np.arange(n)
    m = np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


DCT8 = _dct_matrix(8)


def grid_blocks(image: np.ndarray, offset: tuple[int, int]) -> np.ndarray:
    """Every whole 8x8 block of `image` [H, W, ...] on the grid starting at (row, column) `offset`:
    [N, 8, 8, ...]."""
    r, c = offset
    h, w = (image.shape[0] - r) // 8, (image.shape[1] - c) // 8
    if h <= 0 or w <= 0:
        return np.zeros((0, 8, 8) + image.shape[2:], image.dtype)
    view = image[r : r + 8 * h, c : c + 8 * w].reshape(h, 8, w, 8, *image.shape[2:])
    return view.swapaxes(1, 2).reshape(-1, 8, 8, *image.shape[2:])


# JPEG's (JFIF) colour transform, rows Y, Cb, Cr (Cb and Cr without their +128: only their detail is read).
YCBCR = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], np.float32)



def rgb_blocks(tiles: Sequence[np.ndarray], offsets: Sequence[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """RGB [N, 8, 8, 3] (float32) of the distinct whole 8x8 blocks of RGB uint8 tiles on their grids, in order,
    and where each pixel was clipped [N, 8, 8] (int8: +1 a channel at 255, -1 a channel at 0, 2 both: luma
    unknown).

    A block repeated on the grid (a pattern whose period divides 8: checkerboards, stripes, dither) is one
    observation however often it recurs: counted once per copy, its few coefficient values fit some lattice by
    chance with a JPEG's support (a clean 2-pixel checkerboard read IJG q50 at 3.9 per coefficient)."""
    blocks, clips = [], []
    for tile, offset in zip(tiles, offsets):
        r, g, b = tile[..., 0], tile[..., 1], tile[..., 2]
        high = np.maximum(np.maximum(r, g), b) == 255
        low = np.minimum(np.minimum(r, g), b) == 0
        clip = np.where(high & low, 2, high.view(np.int8) - low.view(np.int8)).astype(np.int8)
        clips.append(grid_blocks(clip, offset))
        blocks.append(grid_blocks(tile, offset))
    if not blocks:
        return np.zeros((0, 8, 8, 3), np.float32), np.zeros((0, 8, 8), np.int8)
    pixels, clips = np.concatenate(blocks), np.concatenate(clips)
    if not len(pixels):  # tiles too small, or offsets too far in, for one whole block
        return np.zeros((0, 8, 8, 3), np.float32), clips
    # Each block's 192 bytes as one opaque value (clip flags follow from the pixels): sorted ~30x faster than rows.
    keys = np.ascontiguousarray(pixels.reshape(len(pixels), -1)).view(np.dtype((np.void, 8 * 8 * 3)))
    first = np.sort(np.unique(keys.ravel(), return_index=True)[1])
    return pixels[first].astype(np.float32), clips[first]


# float32 and stacked 8x8 products: numpy runs these without BLAS threads, which on a busy machine cost more
# than they save (one 64x64 product over the batch is 5-50x slower there).
DCT8_32 = DCT8.astype(np.float32)


def dct_blocks(x: np.ndarray) -> np.ndarray:
    """Pixels [..., 8, 8] -> JPEG's DCT coefficients [..., 8, 8] (float32)."""
    return DCT8_32 @ (x.astype(np.float32, copy=False) - np.float32(128.0)) @ DCT8_32.T


def idct_blocks(c: np.ndarray) -> np.ndarray:
    return DCT8_32.T @ c.astype(np.float32, copy=False) @ DCT8_32 + np.float32(128.0)


def repair_clipped(luma: np.ndarray, clip: np.ndarray, tables: np.ndarray, rounds: int,
                   observed: Optional[np.ndarray] = None) -> np.ndarray:
    """DCT coefficients [C, N, 8, 8] of clipped blocks `luma` [N, 8, 8] as each candidate table [C, 8, 8] would
    have them before the decoder clipped them: alternately put the coefficients on the table's lattice and put
    back the pixels that were not clipped (clipped ones only move past their clip). For the encoder's table the
    blocks settle on its lattice; other tables cannot hold both constraints. `observed`: dct_blocks(luma), when
    the caller has it.

    A round changes each (table, block) pair on its own (8x8 products, elementwise steps): a pair that a round
    leaves exactly as it was is settled for good, with the coefficients that round read; later rounds skip it
    (on eval-wild-cal's JPEGs, 70% of the pairs settle within 8 rounds, most of them within 2)."""
    candidates, blocks = len(tables), len(luma)
    # One row per (table, block) pair, block-major (row n * candidates + t is block n under table t): the memory
    # order numpy gave the plain loop's broadcast products, so that fit_clipped's sums add in the same order.
    steps = np.tile(tables.astype(np.float32), (blocks, 1, 1))
    inverse = 1.0 / steps
    # Each pixel's bounds: equal for pixels not clipped, open above a channel at 255, below one at 0.
    lowest = np.repeat(np.where((clip == -1) | (clip == 2), -np.inf, luma).astype(np.float32), candidates, axis=0)
    highest = np.repeat(np.where((clip == 1) | (clip == 2), np.inf, luma).astype(np.float32), candidates, axis=0)
    x = np.repeat(luma.astype(np.float32), candidates, axis=0)
    # Every table starts from the observed block: its coefficients are computed once, not once per table.
    coefficients = np.repeat(dct_blocks(luma) if observed is None else observed, candidates, axis=0)
    rows, read = np.arange(len(x)), coefficients  # the pairs still moving, their coefficients this round
    for n in range(rounds):
        if n:
            read = dct_blocks(x)
        lattice = np.multiply(read, inverse)
        np.round(lattice, out=lattice)
        lattice *= steps
        after = idct_blocks(lattice)
        np.maximum(after, lowest, out=after)  # np.clip's values, without its checks
        np.minimum(after, highest, out=after)
        moved = (after != x).reshape(len(x), 64).any(axis=1)  # not -1: numpy cannot infer it for no pairs
        coefficients[rows[~moved]] = read[~moved]
        if not moved.any():
            return coefficients.reshape(blocks, candidates, 8, 8).swapaxes(0, 1)
        rows, x, steps, inverse, lowest, highest = (a[moved] for a in (rows, after, steps, inverse, lowest, highest))
    coefficients[rows] = dct_blocks(x)
    return coefficients.reshape(blocks, candidates, 8, 8).swapaxes(0, 1)


def lower_quartile_floor(magnitudes: np.ndarray) -> int:
    """int(np.quantile(magnitudes, 0.25)) of magnitudes >= 0 [M], without np.quantile's cost where it can.

    The quartile interpolates between two order statistics and lies between them: when they share an integer
    part, that is its integer part too; only otherwise is it computed in full."""
    low = (len(magnitudes) - 1) // 4  # np.quantile's linear method: the statistic at 0.25 (M - 1), then the next
    high = min(low + 1, len(magnitudes) - 1)
    below, above = np.partition(magnitudes, (low, high))[[low, high]]
    if int(below) == int(above):
        return int(below)
    return int(np.quantile(magnitudes, 0.25))


def frequency_step(values: np.ndarray) -> int:
    """The step whose lattice best explains the clearly non-zero coefficients `values` [M]; 0 when unknown
    (too few of them, or no lattice above a step of 1 explains them well: MIN_EVIDENCE per coefficient)."""
    if len(values) < MIN_SUPPORT:
        return 0
    # Every non-zero multiple of the step is at least the step: the candidates end near the small magnitudes.
    top = min(lower_quartile_floor(np.abs(values)) + 2, MAX_STEP)
    candidates = np.arange(1, top + 1, dtype=np.float64)[:, None]
    evidence = lattice_evidence(values[None, :], candidates).mean(axis=1)
    best = int(np.argmax(evidence))
    return int(candidates[best, 0]) if best > 0 and evidence[best] >= MIN_EVIDENCE else 0


def nonzero_samples(coefficients: np.ndarray) -> list[np.ndarray]:
    """Per frequency (column of `coefficients` [N, F]), up to MAX_SAMPLES of its clearly non-zero coefficients
    (spread over the blocks)."""
    out = []
    for k in range(coefficients.shape[1]):
        column = coefficients[:, k]
        values = column[np.abs(column) >= NONZERO]
        if len(values) > MAX_SAMPLES:
            values = values[:: len(values) // MAX_SAMPLES][:MAX_SAMPLES]
        out.append(values)
    return out


def fit_ijg_lattice(samples: list[np.ndarray]) -> tuple[Optional[int], float]:
    """The IJG quality whose luma table's lattices best explain the AC coefficients pooled over frequencies, and
    its evidence per coefficient (about log(step) where the lattice holds, negative where none does)."""
    values = np.concatenate(samples[1:])
    if len(values) < MIN_SUPPORT:
        return None, 0.0
    freq = np.repeat(np.arange(1, len(samples)), [len(v) for v in samples[1:]])
    if len(values) > MAX_POOLED:  # spread over the frequencies as found
        keep = np.linspace(0, len(values) - 1, MAX_POOLED).astype(np.int64)
        values, freq = values[keep], freq[keep]
    steps = IJG_LUMA.reshape(100, 64)[:, freq]  # [100, M]
    evidence = lattice_evidence(values[None, :], steps).sum(axis=1)
    best = len(evidence) - 1 - int(np.argmax(evidence[::-1]))
    return int(QUALITIES[best]), float(evidence[best] / len(values))


class TableEstimate:
    """The luma quantisation table read from pixels.

    `quality`: the IJG quality whose lattices explain the coefficients best, with its `evidence` per
    coefficient; `blocks`: the unclipped blocks read. What only --details shows is computed when asked: the
    steps estimated one frequency at a time (`steps`, 0 where unknown), how far they are from the fitted table
    (`fit`), and the chroma subsampling guess (`subsampling`)."""

    def __init__(self, samples: list[np.ndarray], blocks: int, quality: Optional[int], evidence: float,
                 chroma: np.ndarray, clipped_frequencies: Optional[int] = None):
        self.samples, self.blocks, self.quality, self.evidence = samples, blocks, quality, evidence
        self._chroma = chroma  # unclipped Cb, Cr blocks [2, N, 8, 8], read by `subsampling`
        self._clipped_frequencies = clipped_frequencies  # set when the fit read clipped blocks (fit_clipped)

    @property
    def frequencies_seen(self) -> int:
        """AC frequencies with a clearly non-zero coefficient in the blocks the fit read (unclipped ones, or the
        clipped ones when only those could be read, once repaired: see fit_clipped): a smooth gradient shows one
        or two, whose few repeated values fit many lattices; JPEG'd art with any texture shows a dozen or more."""
        if self._clipped_frequencies is not None:
            return self._clipped_frequencies
        return sum(len(s) > 0 for s in self.samples[1:])

    @property
    def lattice_free(self) -> bool:
        """Whether the unclipped blocks showed, with ample support, that there is no table (LATTICE_FREE_SUPPORT):
        reading more of the image will not find one."""
        return self._clipped_frequencies is None and lattice_free(self.samples, self.evidence)

    @property
    def found(self) -> bool:
        """Whether the coefficients sit on an IJG table's lattices (not a resized or re-rendered image)."""
        return self.quality is not None and self.evidence >= MIN_EVIDENCE

    @cached_property
    def steps(self) -> np.ndarray:
        steps = np.zeros(64, dtype=np.int64)
        for k in range(1, 64):  # the DC step is unreliable: level shifts and flat areas put DC anywhere
            steps[k] = frequency_step(self.samples[k])
        return steps.reshape(8, 8)

    @property
    def fit(self) -> Optional[QualityFit]:
        known = self.steps > 0
        return QualityFit.against(self.steps, known, self.quality) if self.quality and known.any() else None

    @property
    def kind(self) -> Optional[str]:
        """"ijg" when an IJG table's lattices hold, "custom" when only steps of its own do (jpegli, mozjpeg,
        cameras), None when no lattice shows."""
        if self.found:
            return "ijg"
        return "custom" if (self.steps > 1).sum() >= MIN_CUSTOM_STEPS else None

    @property
    def nearest_quality(self) -> Optional[int]:
        """The IJG quality: the lattice fit's, else the one whose table is nearest the steps found."""
        if self.found:
            return self.quality
        known = self.steps > 0
        fit = fit_quality(self.steps, known) if known.any() else None
        return None if fit is None else fit.quality

    @cached_property
    def subsampling(self) -> Optional[str]:
        return guess_subsampling(self._chroma, self.quality if self.found else None)

    def table(self) -> list[list[Optional[int]]]:
        return [[int(s) if s else None for s in row] for row in self.steps]


def fit_clipped(luma: np.ndarray, clip: np.ndarray) -> tuple[Optional[int], float, int]:
    """The IJG quality whose lattices best explain clipped blocks once repaired for it (`repair_clipped`), its
    evidence per coefficient, and the AC frequencies where the repair left a coefficient on a non-zero lattice
    point; coefficients are those clearly non-zero as observed."""
    clipped = (clip != 0).reshape(len(clip), -1).sum(axis=1)
    usable = (clipped > 0) & (clipped <= MAX_CLIPPED_PIXELS)
    if not usable.any():
        return None, 0.0, 0
    luma, clip = luma[usable], clip[usable]
    observed = dct_blocks(luma)
    energy = (np.abs(observed) >= NONZERO).reshape(len(luma), -1).sum(axis=1)
    keep = np.argsort(-energy, kind="stable")[:MAX_CLIPPED_BLOCKS]
    luma, clip, observed = luma[keep], clip[keep], observed[keep]
    mask = np.abs(observed) >= NONZERO
    mask[:, 0, 0] = False
    if mask.sum() < MIN_CLIPPED_SUPPORT:
        return None, 0.0, 0

    def evidence(qualities: np.ndarray, blocks: int, rounds: int) -> tuple[np.ndarray, np.ndarray]:
        """Per quality, the evidence per coefficient, and where the repair left one on a non-zero lattice point
        [C, blocks, 8, 8]."""
        tables = IJG_LUMA[qualities - 1]
        repaired = repair_clipped(luma[:blocks], clip[:blocks], tables, rounds, observed[:blocks])
        scores = lattice_evidence(repaired, tables[:, None], zero=True) * mask[:blocks]
        return (scores.sum(axis=(1, 2, 3)) / max(mask[:blocks].sum(), 1),
                (np.abs(repaired) >= tables[:, None] / 2) & mask[:blocks])

    scores, _ = evidence(QUALITIES, COARSE_BLOCKS, COARSE_ROUNDS)
    centre = int(QUALITIES[int(np.argmax(scores))])
    fine = np.arange(max(1, centre - FINE_SPAN), min(100, centre + FINE_SPAN) + 1)
    scores, kept = evidence(fine, MAX_CLIPPED_BLOCKS, REPAIR_ROUNDS)
    best = len(scores) - 1 - int(np.argmax(scores[::-1]))
    frequencies = int(kept[best].any(axis=0).sum())
    if kept[best].sum() < MIN_REPAIRED_NONZERO * mask.sum():  # the best explanation flattens the blocks
        return None, 0.0, frequencies
    return int(fine[best]), float(scores[best]), frequencies


# Clipped blocks are read only when no unclipped block shows a lattice (art on white or black backgrounds):
# at most this many, those with the most detail, with at most this many clipped pixels each (beyond, a block
# could settle on any lattice), repaired in this many rounds per candidate quality: first every quality on the
# COARSE_BLOCKS most detailed blocks in COARSE_ROUNDS rounds, then the qualities within FINE_SPAN of the best on
# all. The true table's evidence is a sharp peak (its lattice alone holds): a coarse grid of qualities (every 5th)
# missed it and settled on a table of about half its steps (q30 read 59, q66 83, q45 72), whose lattice holds the
# true one's points too.
MAX_CLIPPED_BLOCKS = 64
# Share of those coefficients that the best fit's repair must leave on a non-zero lattice point. Pixels with a
# channel at 0 or 255 count as clipped, free to move, and clean art drawn in saturated colours (pure red, yellow)
# is full of them: flattening its blocks puts every coefficient at zero, on every lattice, and the coarsest tables
# win (clean x8 pixel art with red strokes read q1-8 at 1-2 per coefficient, keeping 0.5-3.3% non-zero). JPEGs'
# clipped blocks keep 16-26% at q5, 47-100% at q30 and above; a few saturated pixel-art JPEGs keep none (they
# decode to flat blocks plus clipping) and go unread.
MIN_REPAIRED_NONZERO = 0.1
MIN_CLIPPED_SUPPORT = 64  # clearly non-zero AC coefficients among them: fewer, and a near-flat page could fit
MAX_CLIPPED_PIXELS = 24
REPAIR_ROUNDS = 8
COARSE_BLOCKS = 12
COARSE_ROUNDS = 3
FINE_SPAN = 4


def lattice_free(samples: list[np.ndarray], evidence: float) -> bool:
    """Whether unclipped blocks' coefficients `samples` with the lattice fit's `evidence` show that there is no
    table to find (see LATTICE_FREE_SUPPORT)."""
    return evidence <= 0 and sum(len(v) for v in samples[1:]) >= LATTICE_FREE_SUPPORT


def estimate_luma_table(tiles: Sequence[np.ndarray], offsets: Sequence[tuple[int, int]],
                        long_shot: bool = False) -> TableEstimate:
    """RGB uint8 tiles and the (row, column) where each tile's first whole 8x8 block starts (`long_shot`: a read
    that will most likely find nothing; see LATTICE_FREE_SUPPORT)."""
    rgb, clip = rgb_blocks(tiles, offsets)
    luma = rgb @ YCBCR[0]
    unclipped = ~(clip != 0).reshape(len(clip), 64).any(axis=1)
    samples = nonzero_samples(dct_blocks(luma[unclipped]).reshape(-1, 64))
    quality, evidence = fit_ijg_lattice(samples)
    clipped_frequencies = None
    if (quality is None or evidence < MIN_EVIDENCE) and not unclipped.all() and not (
            long_shot and lattice_free(samples, evidence)):
        quality, evidence, clipped_frequencies = fit_clipped(luma, clip)
    return TableEstimate(samples, int(unclipped.sum()), quality, evidence, rgb[unclipped], clipped_frequencies)


# Low chroma frequencies whose steps show a full-resolution chroma lattice (4:4:4).
CHROMA_LATTICE_FREQUENCIES = (1, 8, 9, 2, 16)
# Above this quality IJG chroma steps are 2-3, too fine to show: no lattice then proves nothing.
MAX_SUBSAMPLING_QUALITY = 90


def guess_subsampling(rgb: np.ndarray, quality: Optional[int]) -> Optional[str]:
    """"4:4:4" or "subsampled" (4:2:0 or 4:2:2: the header tells which) from unclipped RGB blocks
    [N, 8, 8, 3] on the luma grid, for a JPEG of IJG `quality`; None when the pixels cannot tell (no colour,
    too little chroma detail, or steps too fine).

    Full-resolution chroma is quantised on the same 8x8 grid as luma: its low frequencies sit on lattices (Cb and
    Cr share IJG's chroma table). Subsampled chroma is upsampled from 16-pixel blocks: no lattice on that grid."""
    if not len(rgb):
        return None
    chroma = np.moveaxis(rgb @ YCBCR[1:].T, -1, 0)  # Cb, Cr [2, N, 8, 8]
    flat = dct_blocks(chroma.reshape(-1, 8, 8)).reshape(-1, 64)
    samples = nonzero_samples(flat[:, list(CHROMA_LATTICE_FREQUENCIES)])
    if sum(frequency_step(v) >= 2 for v in samples) >= 2:
        return "4:4:4"
    supported = sum(len(v) >= MIN_SUPPORT for v in samples)
    if quality is None or quality > MAX_SUBSAMPLING_QUALITY or supported < 3:
        return None
    return "subsampled"
