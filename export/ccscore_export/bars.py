"""Issue #10's limits on clean art, shared by the accuracy benchmark (which reports them) and calibration (which
may choose a gate within them)."""

from __future__ import annotations

import math

PALETTE_KINDS = ("palette", "palette_dither")
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
)
