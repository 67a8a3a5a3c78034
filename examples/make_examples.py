"""Regenerates the example images: a procedural illustration (drawn in memory, never saved lossy) stored as PNG,
and the same picture after JPEG quality 80 and WebP quality 85, also stored as PNG. Needs the [train] extra."""

import io
from pathlib import Path

import numpy as np
from PIL import Image

from ccscore_export.data.procedural import draw_illustration

here = Path(__file__).parent
clean = Image.fromarray(draw_illustration(np.random.default_rng(2026), 512, 768))
clean.save(here / "art-clean.png")
for fmt, quality, name in (("JPEG", 80, "art-jpeg-q80.png"), ("WEBP", 85, "art-webp-q85.png")):
    buf = io.BytesIO()
    clean.save(buf, fmt, quality=quality)
    Image.open(io.BytesIO(buf.getvalue())).convert("RGB").save(here / name)
