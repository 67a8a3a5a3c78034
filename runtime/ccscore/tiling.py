"""Tiling strategies: how an image becomes the fixed-size tiles a model sees.

A model names its strategy and parameters in its ONNX metadata; the runtime looks the strategy up here.
Every strategy reads a `DecodedImage` (an RGB array is wrapped as one) and returns a `Tiles` batch: uint8 RGB
`[N, T, T, 3]` plus each tile's box in image pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
from PIL import Image

from .images import DecodedImage

Box = tuple[int, int, int, int]  # left, top, right, bottom in image pixels (right/bottom exclusive)
# A content-tiled image of this many pixels or fewer keeps them beside its tiles (`Tiles.whole`, at most 768 KiB, sent
# from the workers with the tiles, about twice their bytes at this size): its few tiles give the blocks' read-back
# (`downscaled_blocks`) too few windows, and the whole image gives more. Read only where the judge leans (about 3% of
# the calibration set's images) and the tiles give too few windows; carried for every image this small, because which
# those are is known only once scored.
WHOLE_MAX_PIXELS = 512 * 512


@dataclass
class Tiles:
    pixels: np.ndarray  # uint8 [N, T, T, 3]
    boxes: list[Box]
    # The image halved and tiled again (boxes in halved pixels), where its first tiles look upscaled x2
    # (`halved_tiles`); None otherwise. Halved tiles can carry their own: the image halved twice (upscaled x4).
    halved: Optional["Tiles"] = None
    # Of halved tiles: the image pixel (x, y) where their blocks start, and the image's pixels per tile pixel
    # (2 halved, 4 halved twice); and the image halved from another pixel (`upscale_pairing`), to judge where
    # these show nothing.
    origin: tuple[int, int] = (0, 0)
    scale: int = 1
    alternative: Optional["Tiles"] = None
    # Halved only to be halved again, not judged: the image showed an x4 upscale's cliff alone, and halved once an x4
    # upscale is an x2 one, whose grid is still hidden (judging it found nothing there, and flagged clean art).
    stepping_stone: bool = False
    # The image resampled back to sizes it may have been upscaled from by a factor other than 2 or 4
    # (`unscaled_tiles`: most likely first), each tiled; of such tiles: the image's pixels per tile pixel, (x, y).
    unscaled: tuple["Tiles", ...] = ()
    factor: Optional[tuple[float, float]] = None
    # The whole image's pixels (RGB uint8, a copy), of a content-tiled image of WHOLE_MAX_PIXELS at most; else None.
    whole: Optional[np.ndarray] = None

    def own(self, n: Optional[int] = None) -> list[np.ndarray]:
        """Each tile's own pixels (of the first n only, where given: `CutOnRead` cuts no further): a small image's
        tiles are edge-padded, and the padding is not the image's."""
        pixels, boxes = (self.pixels, self.boxes) if n is None else (self.first(n), self.first_boxes(n))
        return [tile[: box[3] - box[1], : box[2] - box[0]] for tile, box in zip(pixels, boxes)]

    # What scoring reads first (`CutOnRead` cuts only as far as these ask).
    def first(self, n: int) -> np.ndarray:
        """The first n tiles' pixels (fewer where there are fewer)."""
        return self.pixels[:n]

    def first_boxes(self, n: int) -> list[Box]:
        return self.boxes[:n]

    def more_than(self, n: int) -> bool:
        return len(self.boxes) > n

    def cut_boxes(self) -> list[Box]:
        """The boxes of the tiles cut so far: all of them (`CutOnRead`: those read)."""
        return self.boxes


class CutOnRead(Tiles):
    """`content_tiles`' tiles, cut from the image only as far as they are read: scoring stops early on the first
    two for most images, and the others' crops (a halved one reads 4 times a tile's area, flattened and reduced)
    would cost for nothing. Until every tile is cut it holds the decoded image: `make_tiles` gives them cut unless
    asked (`cut_on_read`: scored at once, as the pipeline's workers and `Scorer.score` do). `first(n)` and
    `first_boxes(n)` cut until n tiles are kept, `more_than(n)` until n + 1; `pixels` and `boxes` cut them all.
    Flat tiles are left out as they are met (`textured`, as `without_flat` decides), so the tiles are exactly a
    plain `Tiles`'. Pickled (a worker sending tiles), it is that plain `Tiles`."""

    def __init__(self, image: DecodedImage, ranked: list[Box], tile_size: int):
        self._image, self._ranked, self._tile_size = image, ranked, tile_size
        self._tried = 0  # boxes of `ranked` cut so far
        self._kept: list[np.ndarray] = []
        self._boxes: list[Box] = []
        self._all: Optional[np.ndarray] = None  # every tile, stacked once all are cut
        self.halved, self.origin, self.scale, self.alternative, self.stepping_stone = None, (0, 0), 1, None, False
        self.unscaled, self.factor, self.whole = (), None, None

    def _cut(self, n: int) -> None:
        """Cuts ranked boxes until n tiles are kept or none is left (the image is let go then)."""
        while len(self._boxes) < n and self._tried < len(self._ranked):
            box = self._ranked[self._tried]
            self._tried += 1
            tile = self._image.crop(*box)
            if textured(tile[None])[0]:
                self._kept.append(np.ascontiguousarray(tile))
                self._boxes.append(box)
        if self._tried == len(self._ranked):
            self._image = None

    def _stacked(self, kept: list[np.ndarray]) -> np.ndarray:
        return np.stack(kept) if kept else np.zeros((0, self._tile_size, self._tile_size, 3), np.uint8)

    @property
    def pixels(self) -> np.ndarray:  # type: ignore[override]
        if self._all is None:
            self._cut(len(self._ranked))
            self._all = self._stacked(self._kept)
            self._kept = list(self._all)  # views of the stack: the tiles are held once
        return self._all

    @property
    def boxes(self) -> list[Box]:  # type: ignore[override]
        self._cut(len(self._ranked))
        return list(self._boxes)

    def first(self, n: int) -> np.ndarray:
        self._cut(n)
        return self._stacked(self._kept[:n])

    def first_boxes(self, n: int) -> list[Box]:
        self._cut(n)
        return self._boxes[:n]

    def more_than(self, n: int) -> bool:
        self._cut(n + 1)
        return len(self._boxes) > n

    def cut_boxes(self) -> list[Box]:
        """The boxes of the tiles cut and kept so far (nothing more is cut)."""
        return list(self._boxes)

    def __reduce__(self):
        return Tiles, (self.pixels, self.boxes, self.halved, self.origin, self.scale, self.alternative,
                       self.stepping_stone, self.unscaled, self.factor, self.whole)


def as_decoded(image: DecodedImage | np.ndarray) -> DecodedImage:
    """Strategies read a `DecodedImage`; a plain RGB array is wrapped as one."""
    return image if isinstance(image, DecodedImage) else DecodedImage.from_array(image)


# BT.601 luma weights, shared by `luma` and the flat check (float32: the products Python floats gave, bit for bit).
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)


def luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma as float32, the colour space JPEG and WebP quantise in."""
    rgb = rgb.astype(np.float32)
    return LUMA_WEIGHTS[0] * rgb[..., 0] + LUMA_WEIGHTS[1] * rgb[..., 1] + LUMA_WEIGHTS[2] * rgb[..., 2]


# Below this many pixels on a side an image holds less than two 8x8 blocks across: no grid can show.
MIN_SIDE = 16


def _edge_padded(window: np.ndarray, size: int) -> np.ndarray:
    """A window smaller than a tile, completed by repeating its last row and column.

    Repeated pixels are constant along the padded axis, so every grid phase sees the same zeros there: the
    padding adds no phase preference (mirroring would: blocks centred on the mirror axis lose their odd
    coefficients, a grid that the image never had).
    """
    h, w = window.shape[:2]
    return np.pad(window, ((0, size - h), (0, size - w), (0, 0)), mode="edge")


def window_texture(rgb: np.ndarray) -> float:
    """The share of green neighbour steps in the TEXTURE_BAND (tile_texture_scores' band, on single steps)."""
    g = rgb[..., 1].astype(np.int16)
    steps = np.concatenate([np.abs(np.diff(g, axis=1)).ravel(), np.abs(np.diff(g, axis=0)).ravel()])
    return float(((steps > TEXTURE_BAND[0]) & (steps < TEXTURE_BAND[1])).mean()) if steps.size else 0.0


def small_image_tiles(image: DecodedImage, tile_size: int, max_tiles: int) -> Tiles:
    """Tiles of an image narrower or shorter than a tile: windows of its own pixels, edge-padded.

    Along a side longer than a tile, windows of `tile_size` are cut on an even spread (at most 4 x max_tiles
    candidates, so a long strip costs no more than a few tiles) and the most textured `max_tiles` are kept.
    An image with a side under MIN_SIDE gives no tile: it cannot show a block grid.
    """
    w, h = image.size
    if min(w, h) < MIN_SIDE:
        return Tiles(np.zeros((0, tile_size, tile_size, 3), np.uint8), [])
    bw, bh = min(w, tile_size), min(h, tile_size)
    xs = np.unique(np.linspace(0, w - bw, min(4 * max_tiles, max(1, w // bw))).round().astype(int))
    ys = np.unique(np.linspace(0, h - bh, min(4 * max_tiles, max(1, h // bh))).round().astype(int))
    boxes = [(int(x), int(y), int(x) + bw, int(y) + bh) for y in ys for x in xs]
    windows = [image.crop(*box) for box in boxes]
    order = np.argsort([-window_texture(win) for win in windows], kind="stable")[:max_tiles]
    pixels = np.stack([_edge_padded(windows[k], tile_size) for k in order])
    return without_flat(Tiles(pixels, [boxes[k] for k in order]))


# Texture score below which a cell counts as flat, and the sampling step of the texture plane (see
# content_tiles); models record both in their metadata.
MIN_TEXTURE = 0.005
TEXTURE_STEP = 4
# Neighbour differences (0-255) that count as texture a codec must quantise: above rounding, below hard edges.
TEXTURE_BAND = (1, 48)
# Tiles flatter than this (luma standard deviation, 0-255) hold nothing a codec could visibly mark: blank,
# one colour, +-1 level noise. They are never scored (an image of only such tiles has no evidence), and the
# training data leaves them out too.
MIN_TILE_STD = 1.0


# Rows of a tile read to clear it of flatness (see without_flat): every SPARSE_ROWS-th.
SPARSE_ROWS = 4
# Over all n pixels, sum((x - mean)^2) is at least that sum over any m of them about their own mean, so the
# variance is at least m/n of theirs: a tile whose every SPARSE_ROWS-th row has a luma std of at least
# sqrt(SPARSE_ROWS) * MIN_TILE_STD varies by MIN_TILE_STD over all its pixels. The factor 1.25 keeps the bound
# clear of float32 rounding (of this std and of the full one it stands for) on tiles of up to megapixels.
SURELY_TEXTURED_STD = 1.25 * np.sqrt(SPARSE_ROWS) * MIN_TILE_STD


def textured(pixels: np.ndarray) -> np.ndarray:
    """Per tile of `pixels` [N, T, T, 3], whether its luma varies by at least MIN_TILE_STD.

    Exactly whether its full `luma` std is at least MIN_TILE_STD; that std is computed only for the tiles a
    quarter of their rows cannot already clear (SURELY_TEXTURED_STD): near-flat ones, a few per thousand.
    """
    rows = pixels[:, ::SPARSE_ROWS]
    sparse = rows.reshape(len(rows), -1, 3).astype(np.float32) @ LUMA_WEIGHTS
    keep = sparse.std(axis=1) >= SURELY_TEXTURED_STD
    doubtful = np.flatnonzero(~keep)
    if len(doubtful):
        keep[doubtful] = luma(pixels[doubtful]).std(axis=(1, 2)) >= MIN_TILE_STD
    return keep


def without_flat(tiles: Tiles) -> Tiles:
    """The tiles that are `textured`, in their order."""
    if not len(tiles.boxes):
        return tiles
    keep = textured(tiles.pixels)
    if keep.all():
        return tiles
    return Tiles(tiles.pixels[keep], [box for box, k in zip(tiles.boxes, keep) if k])


def _window_sums(values: np.ndarray, starts: np.ndarray, length: int, axis: int) -> np.ndarray:
    """int32 sums of `values` over the windows [start, start + length) along `axis`; windows are disjoint, sorted."""
    n = values.shape[axis]
    # reduceat sums from each index to the next: interleave starts and ends and keep every other sum. An end
    # at n is left out: the last index already sums to the end.
    bounds = np.stack([starts, np.minimum(starts + length, n)], axis=1).ravel()
    if bounds[-1] == n:
        bounds = bounds[:-1]
    sums = np.add.reduceat(values, bounds, axis=axis, dtype=np.int32)
    return sums.take(np.arange(0, 2 * len(starts), 2), axis=axis)


def tile_texture_scores(image: DecodedImage, size: int, step: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores each cell of a non-overlapping `size` grid by how much compression evidence it can hold.

    Flat cells quantise to zero at every grid phase and carry no evidence; so do cells of pure noise.
    The score is the share of neighbour differences in a moderate band (texture that a codec must
    quantise but not noise), computed on the green channel sampled every `step` pixels to stay cheap next
    to decoding. Returns (scores [rows, cols], row origins, col origins).
    """
    w, h = image.size
    rows = max(1, h // size)
    cols = max(1, w // size)
    # Spread leftover pixels evenly so border cells are not always skipped.
    ys = np.linspace(0, max(0, h - size), rows).round().astype(int)
    xs = np.linspace(0, max(0, w - size), cols).round().astype(int)
    # Green stands in for luma here (it carries 59% of it) at a fraction of the cost: this only ranks cells.
    y = image.sparse_green(step).astype(np.int16)
    grad = np.zeros_like(y)  # |right - here| + |below - here|, zero past the last row and column
    np.abs(y[:, 1:] - y[:, :-1], out=grad[:, :-1])
    grad[:-1] += np.abs(y[1:] - y[:-1])
    useful = ((grad > TEXTURE_BAND[0]) & (grad < TEXTURE_BAND[1])).view(np.uint8)
    cell = max(1, size // step)
    top, left = ys // step, xs // step
    sums = _window_sums(_window_sums(useful, top, cell, axis=0), left, cell, axis=1)
    heights = np.minimum(top + cell, useful.shape[0]) - top
    widths = np.minimum(left + cell, useful.shape[1]) - left
    scores = (sums / np.outer(heights, widths)).astype(np.float32)
    return scores, ys, xs


def content_tiles(image: DecodedImage | np.ndarray, tile_size: int, max_tiles: int = 16,
                  min_texture: float = MIN_TEXTURE, texture_step: int = TEXTURE_STEP) -> Tiles:
    """Native-resolution tiles chosen by content: the `max_tiles` grid cells with the most useful texture.

    Cells scoring below `min_texture` are left out (at least one cell is always kept, unless it is flat: see
    MIN_TILE_STD): a flat cell holds no codec evidence, and averaging its uninformed vote would dilute the cells
    that do.
    No resizing ever happens: resampling erases the block-grid traces the model looks for.
    """
    image = as_decoded(image)
    w, h = image.size
    if h < tile_size or w < tile_size:
        return small_image_tiles(image, tile_size, max_tiles)
    scores, ys, xs = tile_texture_scores(image, tile_size, texture_step)
    order = np.argsort(-scores.ravel(), kind="stable")[:max_tiles]
    order = order[: max(1, int((scores.ravel()[order] >= min_texture).sum()))]
    boxes: list[Box] = []
    for flat in order:
        i, j = divmod(int(flat), scores.shape[1])
        y0, x0 = int(ys[i]), int(xs[j])
        boxes.append((x0, y0, x0 + tile_size, y0 + tile_size))
    return CutOnRead(image, boxes, tile_size)  # flat ones left out as they are cut


# Resizing an image larger than this (pixels) resizes only the regions a tiling keeps, from the original.
# Pillow then gives the same pixels up to +-1 level on a few edge pixels, not bit for bit, so images of ordinary
# shapes keep the whole resize; extreme aspect ratios would otherwise be resized to gigapixels.
MAX_RESIZED_PIXELS = 16 * 1024 * 1024


def _resized_regions(image, size: tuple[int, int], boxes: list[Box], resample: int) -> list:
    """The `boxes` (in resized pixels) of `image.resize(size, resample)`, as Pillow images, in bounded memory."""
    if size == image.size:
        return [image.crop(box) for box in boxes]
    if size[0] * size[1] <= MAX_RESIZED_PIXELS:
        resized = image.resize(size, resample)
        return [resized.crop(box) for box in boxes]
    fx, fy = image.size[0] / size[0], image.size[1] / size[1]
    return [image.resize((r - l, b - t), resample, box=(l * fx, t * fy, r * fx, b * fy)) for l, t, r, b in boxes]


# PIL resampling filters by name (the numbers Pillow and Hugging Face preprocessor configs use).
PIL_RESAMPLE = {"nearest": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5}


def _short_side_to(width: int, height: int, size: int) -> tuple[int, int]:
    """(width, height) with the short side at `size`, the long one truncated (torchvision and transformers alike)."""
    if width <= height:
        return size, int(size * height / width)
    return int(size * width / height), size


def city96_fivecrop_tiles(image: DecodedImage | np.ndarray, tile_size: int, shortest_edge: int | None = None,
                          crop: int | None = None, long_side_limit: int = 1536, resize_to: int = 1536,
                          presize_resample: str = "bilinear", resample: str = "bicubic") -> Tiles:
    """The CityClassifiers reference tiling, reproduced pixel for pixel with Pillow.

    When the short side exceeds `crop` (twice the CLIP size, 672): if the long side exceeds `long_side_limit`,
    the short side is first resized to `resize_to` (torchvision `resize(img, 1536)` on a PIL image: bilinear,
    upscaling too); then the four corner and the centre `crop` squares are cut (torchvision `five_crop`).
    Otherwise the whole image is one view. Each view is then prepared as the slow CLIPImageProcessor does:
    short side resized to `shortest_edge` with `resample` (bicubic), centre crop of `tile_size`.
    Boxes are each tile's area in original image pixels (approximate after resizing).
    """
    from PIL import Image

    shortest_edge = int(shortest_edge or tile_size)
    if shortest_edge < tile_size:
        raise ValueError(f"shortest_edge {shortest_edge} is below the tile size {tile_size}")
    crop = int(crop or 2 * shortest_edge)
    rgb = np.ascontiguousarray(as_decoded(image).rgb())
    height, width = rgb.shape[:2]
    image = Image.fromarray(rgb)
    sx = sy = 1.0
    if min(width, height) > crop:
        size = image.size
        if max(width, height) > long_side_limit:
            size = _short_side_to(width, height, resize_to)
            sx, sy = width / size[0], height / size[1]
        w, h = size
        # torchvision five_crop order: top-left, top-right, bottom-left, bottom-right, centre (round half even).
        origins = [(0, 0), (w - crop, 0), (0, h - crop), (w - crop, h - crop),
                   (int(round((w - crop) / 2.0)), int(round((h - crop) / 2.0)))]
        crops = _resized_regions(image, size, [(x, y, x + crop, y + crop) for x, y in origins],
                                 PIL_RESAMPLE[presize_resample])
        views = [(x, y, view) for (x, y), view in zip(origins, crops)]
    else:
        views = [(0, 0, image)]
    pixels = np.empty((len(views), tile_size, tile_size, 3), np.uint8)
    boxes: list[Box] = []
    for n, (x0, y0, view) in enumerate(views):
        vw, vh = view.size
        rw, rh = _short_side_to(vw, vh, shortest_edge)
        top, left = (rh - tile_size) // 2, (rw - tile_size) // 2  # transformers' center_crop
        (kept,) = _resized_regions(view, (rw, rh), [(left, top, left + tile_size, top + tile_size)],
                                   PIL_RESAMPLE[resample])
        pixels[n] = np.asarray(kept)
        fx, fy = vw / rw, vh / rh
        boxes.append((int(round((x0 + left * fx) * sx)), int(round((y0 + top * fy) * sy)),
                      min(width, int(round((x0 + (left + tile_size) * fx) * sx))),
                      min(height, int(round((y0 + (top + tile_size) * fy) * sy)))))
    return Tiles(pixels, boxes)


# An x2 upscale keeps the source's spectrum below a quarter cycle per pixel and, whatever the interpolating kernel,
# damps what it adds above: the spectrum drops off a cliff there. Soft art, blurs and renders fade smoothly. A block
# grid that an upscale after compression doubled to 16 pixels shows again at 8 once the image is halved.
UPSCALE_BELOW, UPSCALE_ABOVE = (0.17, 0.23), (0.27, 0.33)  # cycles per pixel, either side of the cliff
# Power below over power above, on every axis of the first tiles. It only spares time: judged halved, clean art is
# flagged no more often (eval-wild-cal, every image halved: 21 of 2,160 clean images flagged, against 19 at any
# cliff from 2.5). JPEG then upscaled x2 found on eval-wild-cal: 118 of 120 halving every image, 117 from a cliff
# of 2.5, 115 from 3, 112 from 4; the Debian-art speed set has 16% of its images over 3, 4% over 4.
UPSCALE_MIN_CLIFF = 3.0
UPSCALE_PROBE_TILES = 2  # the most textured tiles, those scored first


def upscale_cliffs(pixels: np.ndarray, factors: tuple[int, ...] = (2,), stop_below: float = 0.0) -> tuple[float, ...]:
    """Per factor, the weakest spectral cliff of an x`factor` upscale (at 1/(2 * factor) cycles per pixel) over
    `pixels` [N, T, T, 3] and both axes: mean Hann-windowed row (column) power of luma in UPSCALE_BELOW over that in
    UPSCALE_ABOVE, both scaled by 2 / factor; 0 for no tile. One spectrum per tile and axis serves every factor.
    Once every factor's cliff is under `stop_below`, they are returned (most images fail on their first tile)."""
    if not len(pixels):
        return (0.0,) * len(factors)
    size = pixels.shape[2]  # tiles are square
    window = np.hanning(size).astype(np.float32)
    bands = []
    for factor in factors:
        freqs = np.fft.rfftfreq(size) * factor / 2
        bands.append(((freqs >= UPSCALE_BELOW[0]) & (freqs <= UPSCALE_BELOW[1]),
                      (freqs >= UPSCALE_ABOVE[0]) & (freqs <= UPSCALE_ABOVE[1])))
    weakest = [float("inf")] * len(factors)
    for tile in pixels:
        y = luma(tile)
        for rows in (y, y.T):  # horizontal frequencies along rows, then vertical ones along columns
            power = (np.abs(np.fft.rfft((rows - rows.mean(axis=1, keepdims=True)) * window, axis=1)) ** 2).mean(axis=0)
            for i, (below, above) in enumerate(bands):
                weakest[i] = min(weakest[i], float(power[below].mean() / (power[above].mean() + 1e-6)))
            if max(weakest) < stop_below:
                return tuple(weakest)
    return tuple(weakest)


def upscale_cliff(pixels: np.ndarray, stop_below: float = 0.0, factor: int = 2) -> float:
    """`upscale_cliffs` for one factor."""
    return upscale_cliffs(pixels, (factor,), stop_below)[0]


# An x2 upscale cropped at an odd offset since has its pixel pairs there: halved from the image's origin, each 2x2
# block straddles two of the source's pixels and a codec's grid is smeared over two pixels. A JPEG's block
# boundaries, every 16 px once doubled, fall between pairs. Each tile votes the parity of the strongest boundary of
# its luma's |first difference| folded at 16 px, per axis, and the pairs start at 1 where this share of the tiles
# says odd: one tile's hard straight edge cannot decide. (eval-wild-cal, 40 JPEG x2 over their 8 tiles: cropped by
# a column 35 read right, by a row and a column 33, uncropped 37; the strongest boundary over all tiles together,
# first tried: 29, 24 and 39. A wrong read costs time only: the origin's halving is judged first. The speed set: 8
# of its 22 images that look upscaled read odd somewhere.)
UPSCALE_PAIRING_SHARE = 0.7


def upscale_pairing(tiles: Tiles) -> tuple[int, int]:
    """The source pixel (x, y), 0 or 1, where an x2 upscale's pixel pairs likely start, read from `tiles`."""
    odd_votes = np.zeros(2)
    for tile, (left, top, _, _) in zip(tiles.pixels, tiles.boxes):
        y = luma(tile)
        for axis, steps, origin in ((0, np.abs(np.diff(y, axis=1)).mean(axis=0), left),
                                    (1, np.abs(np.diff(y, axis=0)).mean(axis=1), top)):
            before = (np.arange(1, len(steps) + 1) + origin) % 16  # each step is the boundary before that pixel
            folded = np.bincount(before, weights=steps, minlength=16)
            odd_votes[axis] += folded[1::2].max() > folded[0::2].max()
    x, y = (int(len(tiles.boxes) > 0 and votes >= UPSCALE_PAIRING_SHARE * len(tiles.boxes)) for votes in odd_votes)
    return x, y


# Halvings tried at most: an x4 upscale after compression (4x upscalers are common) shows its grid halved twice.
# Each halving is tried only where the tiles it starts from show the cliff, so clean art rarely pays for a second.
MAX_HALVINGS = 2
# Tiles cut from an image halved twice: each is a crop 4 times the tile's side reduced, and 4 tiles hold enough
# votes (eval-wild-cal sources as JPEG then x4: 59 of 60 found with 4 or 8; the speed set's 9 images that look
# upscaled x4 then cost 0.1-0.2 CPU-s more in all instead of 0.2-0.35).
HALVED_TWICE_MAX_TILES = 4


def halved_tiles(image: DecodedImage | np.ndarray, tiles: Tiles, tile_size: int, params: dict | None = None
                 ) -> Optional[Tiles]:
    """`content_tiles` of the image halved (2x2 means from its origin), where its first tiles show an x2 upscale's
    spectral cliff (`upscale_cliff` >= UPSCALE_MIN_CLIFF) and the halved image still holds a whole tile each way;
    else None. Where the pairs likely start elsewhere (`upscale_pairing`), the image halved from there too, as the
    `alternative`. The halving from where the pairs start (the origin's where they start there) is tried again the
    same way (its own `halved`), up to MAX_HALVINGS; one only the x4 cliff asked for (`stepping_stone`) is kept only
    where it is halved again.
    `tiles` are `image`'s; their `scale` and `origin` place it in the first image's pixels."""
    image = as_decoded(image)
    if tiles.scale >= 2 ** MAX_HALVINGS or min(image.size) < 2 * tile_size or not tiles.more_than(0):
        return None
    probe = tiles.first(UPSCALE_PROBE_TILES)
    # The image's own tiles are also asked for an x4 upscale's cliff, an octave lower: there the x2 bands hold
    # little of either side (eval-wild-cal sources as JPEG then x4: 4 of 30 show no x2 cliff, every one an x4 cliff).
    # Halved once, an x4 upscale is an x2 one.
    x2, *x4 = upscale_cliffs(probe, (2, 4) if tiles.scale == 1 else (2,), stop_below=UPSCALE_MIN_CLIFF)
    if x2 < UPSCALE_MIN_CLIFF and (not x4 or x4[0] < UPSCALE_MIN_CLIFF):
        return None
    stepping_stone = x2 < UPSCALE_MIN_CLIFF
    pairing = upscale_pairing(tiles)
    halved = None
    # A stepping stone is never judged: it is cut only from where the pairs start (the one halving halved again)
    # and kept only where it is halved again, else its tiles would cost a cut and travel from the workers for nothing.
    for start in (pairing,) if stepping_stone or pairing == (0, 0) else ((0, 0), pairing):
        source = image.halved(start)
        if stepping_stone and min(source.size) < 2 * tile_size:
            continue
        options = dict(params or {})
        if tiles.scale > 1:  # halving twice
            options["max_tiles"] = min(HALVED_TWICE_MAX_TILES, options.get("max_tiles", HALVED_TWICE_MAX_TILES))
        found = content_tiles(source, tile_size, **options)
        found.stepping_stone = stepping_stone
        found.scale = 2 * tiles.scale
        found.origin = (tiles.origin[0] + tiles.scale * start[0], tiles.origin[1] + tiles.scale * start[1])
        if start == pairing:  # halved again only from where the pairs start: the other halving straddles them
            found.halved = halved_tiles(source, found, tile_size, params)
        if stepping_stone and found.halved is None:
            continue
        if halved is None:
            halved = found
        else:
            halved.alternative = found
    return halved


def halvings(tiles: Tiles) -> list[list[Tiles]]:
    """The halved tiles, per halving: [[halved from the origin, its alternative], [each of those halved again, then
    its alternative], ...], in that order (those to judge: not `stepping_stone`, which is halved from the pairs
    alone); empty where the image did not look upscaled."""
    levels: list[list[Tiles]] = []
    current = [tiles]
    while True:
        current = [t for parent in current if parent.halved is not None
                   for t in (parent.halved, parent.halved.alternative) if t is not None]
        if not current:
            return levels
        levels.append(current)


# An image upscaled by another factor (1.2-4.2) is resampled back to the sizes `resized.upscale_sources` reads from
# its pixels, and tiled again, at most this many tiles each (as an image halved twice: enough votes for a grid).
UNSCALED_MAX_TILES = 4


def _resampled_region(image: DecodedImage, region: tuple[float, float, float, float], tile_size: int, fx: float,
                      fy: float) -> np.ndarray:
    """The image's `region` (float pixel bounds) resampled (Lanczos) to a tile, from a crop around it wide enough for
    the kernel (3 source pixels each way, fx or fy image pixels each): the image itself is never copied whole."""
    left, top = max(0, int(region[0] - 3 * fx) - 1), max(0, int(region[1] - 3 * fy) - 1)
    right = min(image.size[0], int(np.ceil(region[2] + 3 * fx)) + 1)
    bottom = min(image.size[1], int(np.ceil(region[3] + 3 * fy)) + 1)
    crop = Image.fromarray(np.ascontiguousarray(image.crop(left, top, right, bottom)))
    box = (region[0] - left, region[1] - top, region[2] - left, region[3] - top)
    return np.asarray(crop.resize((tile_size, tile_size), Image.LANCZOS, box=box))


def unscaled_tiles(image: DecodedImage | np.ndarray, tiles: Tiles, tile_size: int) -> tuple[Tiles, ...]:
    """Tiles of the image resampled back (Lanczos) to each size it may have been upscaled from by a factor that is
    not 2 or 4 (`resized.upscale_sources`, read from `tiles`), most likely first; () where it shows none. Each holds
    up to UNSCALED_MAX_TILES tiles, where the image's most textured tiles fall in the source's pixels (those that do
    not overlap), resampled from the image's own pixels around them (`_resampled_region`: as the whole image resized,
    give or take a level at a crop's edges)."""
    from .resized import UPSCALED_FACTORS, UPSCALED_PROBE_TILES, shows_pitch, upscale_sources

    image = as_decoded(image)
    if min(image.size) < UPSCALED_FACTORS[0] * tile_size or not tiles.more_than(0):
        return ()  # no source could hold a tile
    if not shows_pitch(tiles.own(UPSCALED_PROBE_TILES), tiles.first_boxes(UPSCALED_PROBE_TILES)):
        return ()  # most images stop here, their other tiles still uncut
    sources = upscale_sources(tiles.own(), tiles.boxes, image.size)
    if not sources:
        return ()
    (width, height), found = image.size, []
    for source_width, source_height in sources:
        if min(source_width, source_height) < tile_size:
            continue
        fx, fy = width / source_width, height / source_height
        pixels, boxes = [], []
        for left, top, _, _ in tiles.boxes:
            x, y = min(int(left / fx), source_width - tile_size), min(int(top / fy), source_height - tile_size)
            box = (x, y, x + tile_size, y + tile_size)
            if any(x < r and l < box[2] and y < b and t < box[3] for l, t, r, b in boxes):
                continue
            pixels.append(_resampled_region(image, (x * fx, y * fy, box[2] * fx, box[3] * fy), tile_size, fx, fy))
            boxes.append(box)
            if len(boxes) == UNSCALED_MAX_TILES:
                break
        back = Tiles(np.stack(pixels), boxes)
        back.factor = (fx, fy)
        found.append(back)
    return tuple(found)


TilingStrategy = Callable[..., Tiles]

# Strategy name (as written in model metadata) -> function(image, tile_size, **params).
STRATEGIES: dict[str, TilingStrategy] = {
    "content": content_tiles,
    "city96_fivecrop": city96_fivecrop_tiles,
}


def make_tiles(image: DecodedImage | np.ndarray, strategy: str, tile_size: int, params: dict | None = None,
               halve_upscaled: bool = False, cut_on_read: bool = False) -> Tiles:
    """The strategy's tiles; with `halve_upscaled` (content tiling only), also those of the image halved (once or
    twice) where it looks upscaled x2 or x4 (`halved_tiles`). With `cut_on_read`, content tiles are cut as they
    are read (`CutOnRead`, holding the image meanwhile: for tiles scored at once); else all cut now. A small image's
    content tiles hold its pixels too (`Tiles.whole`)."""
    try:
        fn = STRATEGIES[strategy]
    except KeyError:
        raise ValueError(f"unknown tiling strategy {strategy!r}; known: {', '.join(sorted(STRATEGIES))}") from None
    image = as_decoded(image)
    tiles = fn(image, tile_size, **(params or {}))
    width, height = image.size
    if strategy == "content" and width * height <= WHOLE_MAX_PIXELS:
        tiles.whole = np.array(image.crop(0, 0, width, height))  # a copy: an array's crop is a view of the caller's
    if halve_upscaled and strategy == "content":
        tiles.halved = halved_tiles(image, tiles, tile_size, params)
        tiles.unscaled = unscaled_tiles(image, tiles, tile_size)
    if not cut_on_read:
        for level in [[tiles], *halvings(tiles)]:
            for each in level:
                each.pixels  # noqa: B018 (cuts every tile, letting the image go)
    return tiles
