"""Heatmap of one image: every textured cell of the model's tile grid scored, coloured by P(lossy), codec by hue.

The score command looks at a few tiles (the most textured, and only the first two when they are decisive);
a heatmap scores every cell of the same non-overlapping grid that has texture a codec must quantise
(`tiling.tile_texture_scores` at or above the tiling's `min_texture`). Cells without texture carry no
evidence and stay uncoloured; so do cells the model calls clean (P(clean) >= 1 - threshold). The image's own
label, quality and probabilities are the score command's (`Scorer.score`), shown in the legend.

The colours live here (`CODEC_COLOURS`, `cell_alpha`) and are handed to the HTML report, so that the PNG and
the report's view draw the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .images import DecodedImage
from .tiling import MIN_TEXTURE, TEXTURE_STEP, make_tiles, tile_texture_scores

if TYPE_CHECKING:
    from .results import ScoreResult
    from .scorer import Scorer

# Hue per lossy label (RGB); a label not named here (another model's) gets OTHER_COLOUR.
CODEC_COLOURS = {"jpeg": (255, 64, 32), "webp": (40, 120, 255), "avif": (30, 170, 80), "jxl": (230, 160, 0)}
OTHER_COLOUR = (200, 40, 220)
# Cells are drawn with this opacity range (0-255) from P(lossy) = 1 - threshold up to 1.
MIN_ALPHA, MAX_ALPHA = 60, 150
DISPLAY_SIDE = 1024  # the picture's long side at most (the image is downscaled for display, never upscaled)
CELLS_PER_RUN = 64  # cells cut and scored together: memory stays bounded on a very large image


def codec_colour(label: str) -> tuple[int, int, int]:
    return CODEC_COLOURS.get(label, OTHER_COLOUR)


def cell_alpha(p_lossy: float, threshold: float) -> int:
    """Opacity of a lossy cell: MIN_ALPHA at the decision boundary, MAX_ALPHA at certainty."""
    low = 1.0 - threshold
    share = 1.0 if low >= 1.0 else min(1.0, max(0.0, (p_lossy - low) / (1.0 - low)))
    return int(round(MIN_ALPHA + (MAX_ALPHA - MIN_ALPHA) * share))


@dataclass
class Heatmap:
    """Per-cell scores of one image on the model's grid.

    probs: float32 [rows, cols, C] (labels in `labels` order); NaN for cells without texture (not scored).
    quality: float32 [rows, cols], the model's quality estimate per cell; NaN where not scored or no output.
    boxes: int [rows, cols, 4], each cell's (left, top, right, bottom) in image pixels.
    result: the image's own score (as `Scorer.score` gives it); None from `compute_heatmap(whole=False)`.
    picture: the image, downscaled for display, with the cells drawn and a legend below (a PIL image); None
        from `compute_heatmap(whole=False)`.
    """

    labels: tuple[str, ...]
    probs: np.ndarray
    quality: np.ndarray
    boxes: np.ndarray
    threshold: float
    result: Optional["ScoreResult"]
    picture: Optional[Image.Image]

    @property
    def scored(self) -> np.ndarray:
        """[rows, cols] bool: cells with texture, which were scored."""
        return ~np.isnan(self.probs[..., 0])

    @property
    def p_lossy(self) -> np.ndarray:
        """[rows, cols]: 1 - P(clean); NaN where not scored."""
        return 1.0 - self.probs[..., self.labels.index("clean")]

    def cell_labels(self) -> np.ndarray:
        """[rows, cols] str: each scored cell's decision ('clean' or the likelier lossy label), '' unscored."""
        out = np.full(self.probs.shape[:2], "", dtype=object)
        clean = self.labels.index("clean")
        lossy = [k for k in range(len(self.labels)) if k != clean]
        for i, j in zip(*np.nonzero(self.scored)):
            row = self.probs[i, j]
            out[i, j] = ("clean" if row[clean] >= 1.0 - self.threshold
                         else self.labels[lossy[int(np.argmax(row[lossy]))]])
        return out

    @property
    def coloured(self) -> np.ndarray:
        """[rows, cols] bool: cells drawn in a codec's colour (scored and not clean)."""
        labels = self.cell_labels()
        return (labels != "") & (labels != "clean")

    def cells(self) -> list[tuple[int, int, int, int, str, float, Optional[float]]]:
        """Coloured cells as (left, top, right, bottom, label, P(lossy), quality or None): what a view draws."""
        labels, p_lossy = self.cell_labels(), self.p_lossy
        out = []
        for i, j in zip(*np.nonzero(self.coloured)):
            q = float(self.quality[i, j])
            out.append((*(int(v) for v in self.boxes[i, j]), str(labels[i, j]), float(p_lossy[i, j]),
                        None if np.isnan(q) else q))
        return out


def grid_cells(image: DecodedImage, tiling: str, tile_size: int, params: dict) -> tuple[np.ndarray, np.ndarray]:
    """(boxes [rows, cols, 4], textured [rows, cols] bool): the model's tile grid over the whole image.

    `content` tiling: every cell of its non-overlapping grid, textured where its texture score reaches the
    tiling's `min_texture`. Other tilings (and images smaller than a tile) have no grid: the tiles the strategy
    chooses are the cells, one row of them.
    """
    w, h = image.size
    if tiling == "content" and w >= tile_size and h >= tile_size:
        scores, ys, xs = tile_texture_scores(image, tile_size, params.get("texture_step", TEXTURE_STEP))
        boxes = np.zeros((len(ys), len(xs), 4), np.int64)
        boxes[..., 0] = xs[None, :]
        boxes[..., 1] = ys[:, None]
        boxes[..., 2] = boxes[..., 0] + tile_size
        boxes[..., 3] = boxes[..., 1] + tile_size
        return boxes, scores >= params.get("min_texture", MIN_TEXTURE)
    tiles = make_tiles(image, tiling, tile_size, params)
    boxes = np.array(tiles.boxes, np.int64).reshape(1, -1, 4)
    return boxes, np.ones(boxes.shape[:2], bool)


def compute_heatmap(scorer: "Scorer", image, display_side: int = DISPLAY_SIDE, whole: bool = True) -> Heatmap:
    """See `Scorer.heatmap`. `whole=False` gives the cells alone (`result` and `picture` None): for callers
    that hold the image's record already (the report), a third of the time."""
    import os

    from .images import load_image
    from .scorer import succeeded

    path = os.fspath(image) if isinstance(image, (str, os.PathLike)) else None
    decoded = load_image(image, scorer.max_pixels)
    result = None
    if whole:  # the image's own decision, exactly as the score command makes it (same tiles, early stop, gate)
        tiles = make_tiles(decoded, scorer.info.tiling, scorer.info.tile_size, scorer.tiling_params,
                           scorer.halve_upscaled)
        result = succeeded(scorer.score_together([(path, tiles, decoded.size)])[0])
    boxes, textured = grid_cells(decoded, scorer.info.tiling, scorer.info.tile_size, scorer.tiling_params)
    rows, cols = textured.shape
    labels = scorer.labels
    probs = np.full((rows, cols, len(labels)), np.nan, np.float32)
    quality = np.full((rows, cols), np.nan, np.float32)
    where = list(zip(*np.nonzero(textured)))
    tile = scorer.info.tile_size
    small = decoded.size[0] < tile or decoded.size[1] < tile or scorer.info.tiling != "content"
    for start in range(0, len(where), CELLS_PER_RUN):
        part = where[start : start + CELLS_PER_RUN]
        if small:  # the strategy's own tiles (padded windows, resized crops)
            pixels = make_tiles(decoded, scorer.info.tiling, tile, scorer.tiling_params).pixels[
                [j for _, j in part]]
        else:
            pixels = np.stack([decoded.crop(*(int(v) for v in boxes[i, j])) for i, j in part])
        out = scorer.run(pixels)
        for k, (i, j) in enumerate(part):
            probs[i, j] = out.probs[k]
            if out.quality is not None:
                quality[i, j] = out.quality[k]
    heat = Heatmap(labels, probs, quality, boxes, scorer.threshold, result, None)
    if whole:
        heat.picture = draw_heatmap(decoded, heat, display_side)
    return heat


def _font(size: int):
    try:
        return ImageFont.load_default(size)
    except TypeError:  # Pillow < 10.1: one bitmap size
        return ImageFont.load_default()


def legend_lines(heat: Heatmap) -> list[str]:
    result = heat.result
    quality = f", quality ~{result.quality:.0f}" if result.quality is not None else ""
    evidence = f", evidence {result.evidence.word}" if result.evidence is not None else ""
    probs = "  ".join(f"P({label}) {p:.3f}" for label, p in result.scores.items())
    scored, coloured = int(heat.scored.sum()), int(heat.coloured.sum())
    return [f"{result.label.upper() if result.flagged else 'clean'}{quality}{evidence}   {probs}",
            f"{heat.scored.size} cells: {scored} textured and scored, {coloured} coloured (lossy), "
            f"{heat.scored.size - scored} without texture (uncoloured)"]


def draw_heatmap(image: DecodedImage, heat: Heatmap, display_side: int = DISPLAY_SIDE) -> Image.Image:
    """The image downscaled to at most `display_side`, lossy cells filled in their codec's colour with an
    opacity growing with P(lossy), scored clean cells outlined thinly, and a legend below."""
    w, h = image.size
    scale = min(1.0, display_side / max(w, h, 1))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    base = Image.fromarray(np.ascontiguousarray(image.rgb())) if w * h else Image.new("RGB", (1, 1), "white")
    base = base.resize(size, Image.Resampling.BOX) if base.size != size else base
    overlay = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    labels, p_lossy = heat.cell_labels(), heat.p_lossy
    for i, j in zip(*np.nonzero(heat.scored)):
        left, top, right, bottom = (float(v) * scale for v in heat.boxes[i, j])
        rect = [left, top, max(left, right - 1), max(top, bottom - 1)]
        if labels[i, j] == "clean":
            draw.rectangle(rect, outline=(255, 255, 255, 90))
        else:
            colour = codec_colour(labels[i, j])
            draw.rectangle(rect, fill=(*colour, cell_alpha(float(p_lossy[i, j]), heat.threshold)),
                           outline=(*colour, 255))
    picture = Image.alpha_composite(base.convert("RGBA"), overlay).convert("RGB")
    font = _font(14)
    lines = legend_lines(heat)
    line_height = 20
    legend_width = max(size[0], 640)
    canvas = Image.new("RGB", (legend_width, size[1] + line_height * (len(lines) + 1) + 12), "white")
    canvas.paste(picture, (0, 0))
    draw = ImageDraw.Draw(canvas)
    y = size[1] + 6
    for line in lines:
        draw.text((6, y), line, fill=(0, 0, 0), font=font)
        y += line_height
    x = 6
    for label in [l for l in heat.labels if l != "clean"]:
        for k, p in enumerate((0.5, 0.75, 1.0)):
            colour = codec_colour(label)
            alpha = cell_alpha(p, heat.threshold) / 255
            swatch = tuple(int(255 * (1 - alpha) + c * alpha) for c in colour)
            draw.rectangle([x + 16 * k, y + 2, x + 16 * k + 14, y + 16], fill=swatch, outline=colour)
        draw.text((x + 52, y), f"{label} (P(lossy) 0.5 -> 1)", fill=(0, 0, 0), font=font)
        x += 230
    return canvas
