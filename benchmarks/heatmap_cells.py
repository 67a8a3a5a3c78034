"""How many cells a heatmap gets right on half-JPEG images: procedural art whose left half went through JPEG
(default q60) and whose right half is the clean original.

    python benchmarks/heatmap_cells.py [--images 20] [--quality 60]

A cell is right when it lies in the JPEG half, has texture and is coloured, or lies in the clean half and is
not coloured (untextured cells of the JPEG half cannot show anything and are not counted). Prints per image
and the total. Needs the [train] extra (the art).
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HALF = 512  # the JPEG half's width: a multiple of the 128 px cell, so no cell straddles the seam


def half_jpeg(seed: int, quality: int = 60, height: int = 768):
    """A PIL image 2 * HALF wide: the left half JPEG'd at `quality`, the right half clean."""
    from PIL import Image

    from ccscore_export.data.procedural import draw_illustration

    clean = Image.fromarray(draw_illustration(np.random.default_rng(seed), height, 2 * HALF))
    buf = io.BytesIO()
    clean.save(buf, "JPEG", quality=quality)
    damaged = clean.copy()
    damaged.paste(Image.open(io.BytesIO(buf.getvalue())).convert("RGB").crop((0, 0, HALF, height)), (0, 0))
    return damaged


def cells_right(heat) -> tuple[int, int]:
    """(cells right, cells counted) of a half-JPEG image's heatmap."""
    jpeg_half = heat.boxes[..., 2] <= HALF
    counted = (jpeg_half & heat.scored) | ~jpeg_half
    right = (jpeg_half & heat.coloured) | (~jpeg_half & ~heat.coloured)
    return int((counted & right).sum()), int(counted.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--quality", type=int, default=60)
    args = parser.parse_args()
    sys.path[:0] = [str(ROOT / "runtime"), str(ROOT / "export")]
    from ccscore import Scorer

    scorer = Scorer()
    total_right = total = 0
    print("image  right/cells  JPEG-half coloured  clean-half coloured  image label")
    for seed in range(args.images):
        heat = scorer.heatmap(half_jpeg(seed, args.quality))
        right, counted = cells_right(heat)
        total_right += right
        total += counted
        jpeg_half = heat.boxes[..., 2] <= HALF
        print(f"{seed:5d}  {right:4d}/{counted:<4d}   {int((jpeg_half & heat.coloured).sum()):3d} of "
              f"{int((jpeg_half & heat.scored).sum()):3d} textured   {int((~jpeg_half & heat.coloured).sum()):3d} of "
              f"{int((~jpeg_half).sum()):3d}             {heat.result.label}")
    print(f"cells right: {total_right}/{total} = {100 * total_right / max(total, 1):.1f}% (bar: >= 90%)")


if __name__ == "__main__":
    main()
