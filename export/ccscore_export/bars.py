"""The bars of issues #10 and #12 (limits on clean art, least shares caught of lossy art), shared by the accuracy
benchmark (which reports them) and calibration (which may choose a gate within them)."""

from __future__ import annotations

import math

PALETTE_KINDS = ("palette", "palette_dither")
# Session 15's clean textures and resizes (data.degrade.TEXTURE_NEGATIVES): measured by the benchmark, left out of
# the grid gate's calibration unless asked for (`calibrate --limit-textures`): 0.7.4's gate was chosen without them,
# and its recipe must choose it again; limited at 3% a kind, no gate for 0.7.4's weights fits (canvas 8.3%).
TEXTURE_KINDS = ("pixel_art_smooth", "manga_downscaled", "grainy_resized", "canvas_texture")
WILD_JPEG_KINDS = ("jpeg_cjpeg", "jpeg_imagemagick", "jpeg_graphicsmagick", "jpeg_pillow", "jpeg_jpegli")
# Issue #10's groups of clean art, each with its bar (largest flagged share; NaN: shown, no bar); None: all
# clean kinds together.
CLEAN_GROUPS: tuple[tuple[str, tuple[str, ...] | None, float], ...] = (
    ("all clean kinds", None, 0.03),
    ("originals", ("clean",), 0.05),
    ("grey", ("grey",), 0.04),
    ("line art", ("lineart",), 0.06),
    ("manga", ("manga",), 0.06),
    ("downscaled", ("downscaled", "downscaled_lanczos", "resampled"), 0.03),
    ("upscaled x2", ("upscaled_x2",), 0.04),
    ("upscaled other", ("upscaled_other",), math.nan),
    ("smooth renders", ("smooth_render",), math.nan),
    ("blurred/noisy/sharpened", ("blurred", "noisy", "sharpened"), 0.02),
    ("palette", PALETTE_KINDS, 0.01),
    ("pixel art", ("pixel_art",), math.nan),
    ("smaller than a tile", ("small",), 0.06),
    # Issue #12's precision (TEXTURE_KINDS): no bar of their own; "all clean kinds" counts them.
    ("pixel art upscaled smoothly", ("pixel_art_smooth",), math.nan),
    ("manga downscaled", ("manga_downscaled",), math.nan),
    ("grain resized", ("grainy_resized",), math.nan),
    ("textured canvas", ("canvas_texture",), math.nan),
    # Session 22's controls for JPEG then downscaled on grey art and line art: no bar of their own.
    ("grey downscaled", ("grey_downscaled",), math.nan),
    ("line art downscaled", ("lineart_downscaled",), math.nan),
)
# Issue #10's lossy groups: (name, kinds, least caught share, least codec-right share over the group).
LOSSY_GROUPS: tuple[tuple[str, tuple[str, ...], float, float], ...] = (
    ("plain JPEG, five encoders", WILD_JPEG_KINDS, 0.99, 0.98),
    ("grey JPEG", ("jpeg_grey",), 0.97, math.nan),
    ("WebP (cwebp)", ("webp_cwebp",), 0.99, 0.98),
    ("JPEG line art", ("jpeg_lineart",), math.nan, math.nan),
    ("JPEG manga", ("jpeg_manga",), math.nan, math.nan),
    ("JPEG smaller than a tile", ("jpeg_small",), math.nan, math.nan),
    ("WebP of grey art", ("webp_grey",), math.nan, math.nan),
)
# Issue #12's groups, in the same form (codec right counted over all the group's images): the codecs the 0.6 models
# have no label for, and damage resized after compression (the grid gate cannot see it: its block grid is gone).
NEW_CODEC_GROUPS: tuple[tuple[str, tuple[str, ...], float, float], ...] = (
    ("AVIF (avifenc, Pillow)", ("avif_avifenc", "avif_pillow"), 0.90, 0.90),
    ("JPEG XL (cjxl)", ("jxl_cjxl",), 0.80, 0.85),
)
RESIZED_GROUPS: tuple[tuple[str, tuple[str, ...], float, float], ...] = (
    ("JPEG then downscaled", ("jpeg_downscaled",), 0.95, 0.90),
    ("JPEG then upscaled x2", ("jpeg_upscaled_x2",), 0.90, math.nan),
    ("JPEG then upscaled x1.25-4 (not x2)", ("jpeg_upscaled_other",), math.nan, math.nan),
    ("WebP then downscaled", ("webp_downscaled",), math.nan, math.nan),
    ("JPEG grey art then downscaled", ("jpeg_grey_downscaled",), math.nan, math.nan),
    ("JPEG line art then downscaled", ("jpeg_lineart_downscaled",), math.nan, math.nan),
)
