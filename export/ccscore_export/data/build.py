"""Builds the training / validation tile sets and the per-kind evaluation folders.

Every image is an independent work item seeded by (seed, split, image index), so the output is the same
whatever the number of worker processes. Clean pictures come from the procedural painter and from the
verified real sources of the requested split (`sources.prepare_sources` must have run for those; without
a manifest the build is procedural only and says so).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time
import zlib
from collections import Counter
from multiprocessing import Pool
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from PIL import Image

from . import degrade, wild
from .procedural import PROCEDURAL_STYLES
from .sources import DEFAULT_CACHE, REPO_ROOT, kept_files, load_clean

try:
    from ccscore.tiling import MIN_TILE_STD, content_tiles, luma
except ImportError:  # package not installed yet: use the runtime checkout next to this one
    sys.path.insert(0, str(REPO_ROOT / "runtime"))
    from ccscore.tiling import MIN_TILE_STD, content_tiles, luma

SPLITS = ("train", "val")
MAX_SIDE = 1024  # larger real images are cropped (not resized: that would be a different image) to this
# Share of training images cut to a small crop (24 px to a tile a side), clean and lossy alike.
SMALL_SHARE = 0.08


def _split_code(split: str) -> int:
    return zlib.crc32(split.encode())  # stable across processes, unlike hash()


def _image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, _split_code(split), index])


def _random_background(rng: np.random.Generator) -> tuple[int, int, int]:
    if rng.random() < 0.5:
        return (255, 255, 255)
    return tuple(int(v) for v in rng.integers(0, 256, 3))


def _crop_to(rng: np.random.Generator, rgb: np.ndarray, max_side: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    y0 = int(rng.integers(0, h - max_side + 1)) if h > max_side else 0
    x0 = int(rng.integers(0, w - max_side + 1)) if w > max_side else 0
    return rgb[y0 : y0 + max_side, x0 : x0 + max_side]


def _procedural_size(rng: np.random.Generator) -> tuple[int, int]:
    # Mostly mid sizes (cheap, enough tiles); the extremes still occur.
    h, w = (int(v) for v in np.clip(rng.normal(560, 180, 2), 256, 1024))
    return h, w


def clean_image(rng: np.random.Generator, real: list[tuple[str, Path]], procedural_share: float,
                style: str = "illustration") -> tuple[np.ndarray, str]:
    """(clean RGB, source name) for one work item; procedural pictures are drawn in `style`
    (procedural.PROCEDURAL_STYLES)."""
    # Drawn with or without real sources: a build's pictures never depend on whether the cache holds them
    # (at --procedural-share 1 they are all procedural either way).
    procedural = rng.random() < procedural_share
    if procedural or not real:
        name = "procedural" if style == "illustration" else f"procedural_{style}"
        return PROCEDURAL_STYLES[style](rng, *_procedural_size(rng)), name
    source, path = real[int(rng.integers(len(real)))]
    return _crop_to(rng, load_clean(path, _random_background(rng)), MAX_SIDE), source


# The real-file list is set once per worker process instead of being pickled into every task.
_REAL: list[tuple[str, Path]] = []


def _set_real(real: list[tuple[str, Path]]) -> None:
    global _REAL
    _REAL = real


def _make_item(args: tuple) -> dict:
    seed, split, index, procedural_share, tile_size, tiles_per_image, mix, style = args
    rng = _image_rng(seed, split, index)
    rgb, source = clean_image(rng, _REAL, procedural_share, style)
    out = degrade.random_degradation(rng, rgb, degrade.MIXES[mix])
    image, kind = out.rgb, out.kind
    if rng.random() < SMALL_SHARE and min(image.shape[:2]) >= 24:  # small images and crops: the runtime tiles them edge-padded, so must training
        h, w = image.shape[:2]
        sh, sw = int(rng.integers(24, min(h, tile_size) + 1)), int(rng.integers(24, min(w, tile_size) + 1))
        y0, x0 = int(rng.integers(0, h - sh + 1)), int(rng.integers(0, w - sw + 1))
        image, kind = image[y0 : y0 + sh, x0 : x0 + sw], kind + ":small"
    # content_tiles leaves out flat tiles (MIN_TILE_STD): a lossy label on one would be pure label noise.
    tiles = content_tiles(image, tile_size, max_tiles=tiles_per_image).pixels
    return {"tiles": tiles, "label": out.label, "quality": out.quality, "kind": kind, "source": source}


def build_tiles(
    out_path: str | Path,
    split: str,
    n_images: int,
    seed: int = 0,
    tile_size: int = 128,
    tiles_per_image: int = 4,
    procedural_share: float = 0.5,
    cache_dir: str | Path = DEFAULT_CACHE,
    workers: int = 2,
    log=print,
    mix: str = "full",
    procedural_style: str = "illustration",
) -> dict:
    """Draws `n_images` clean images, degrades each once (a draw from degrade.MIXES[mix]), tiles it and writes
    one .npz.

    Up to `tiles_per_image` content tiles per image; flat tiles (luma std < MIN_TILE_STD) are dropped, so
    small sprites and flat pictures give fewer.

    Arrays: tiles uint8 [N, T, T, 3], label int64 [N], quality float32 [N] (NaN = clean), kind str [N],
    source str [N], image_id int64 [N] (the work-item index; tiles of one image share it).
    Returns a summary dict (counts, seconds).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}")
    start = time.time()
    real = kept_files(split, Path(cache_dir))
    if not real:
        log(f"no verified real sources for split {split!r} (run prepare-sources); procedural images only")
    if procedural_style not in PROCEDURAL_STYLES:
        raise ValueError(f"procedural style must be one of {sorted(PROCEDURAL_STYLES)}")
    tasks = [(seed, split, i, procedural_share, tile_size, tiles_per_image, mix, procedural_style)
             for i in range(n_images)]
    if workers > 1:
        with Pool(workers, initializer=_set_real, initargs=(real,)) as pool:
            items = list(pool.imap(_make_item, tasks, chunksize=8))
    else:
        _set_real(real)
        items = [_make_item(t) for t in tasks]
    counts = [len(it["tiles"]) for it in items]
    data = {
        "tiles": np.concatenate([it["tiles"] for it in items]) if items else np.zeros((0, tile_size, tile_size, 3), np.uint8),
        "label": np.repeat([it["label"] for it in items], counts).astype(np.int64),
        "quality": np.repeat([it["quality"] for it in items], counts).astype(np.float32),
        "kind": np.repeat(np.array([it["kind"] for it in items], dtype=str), counts),
        "source": np.repeat(np.array([it["source"] for it in items], dtype=str), counts),
        "image_id": np.repeat(np.arange(len(items)), counts).astype(np.int64),
    }
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out_path, **data)
    labels = np.array([it["label"] for it in items])
    summary = {
        "images": len(items),
        "tiles": int(len(data["label"])),
        "images_per_label": {degrade.LABEL_NAMES[k]: int((labels == k).sum()) for k in degrade.LABEL_NAMES},
        "real_images": int(sum(not it["source"].startswith("procedural") for it in items)),
        "seconds": round(time.time() - start, 1),
    }
    log(f"wrote {out_path}: {summary}")
    return summary


# ---------------------------------------------------------------- evaluation folders

# A variant's maker returns the image, or (image, quality, detail) when it draws its own settings (quality
# DRAWN in the table): the manifest records the true quality and how each file was made.
DRAWN = float("nan")
EvalMaker = Callable[[np.random.Generator, np.ndarray], "np.ndarray | tuple[np.ndarray, float, str]"]

# The five JPEG encoders of the wild kinds (jpegli where pyjpegli is installed).
WILD_JPEG_ENCODERS = tuple(e for e in ("cjpeg", "imagemagick", "graphicsmagick", "pillow", "jpegli") if e in degrade.jpeg_encoders())
JPEG_QUALITIES = (30, 98)  # drawn uniformly, both ends included: "every quality up to 98"
WEBP_QUALITIES = (30, 95)


def _grey_file(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Exactly grey pictures are stored as L or as RGB PNGs at random (both are common); others unchanged."""
    if image.ndim == 3 and image.shape[2] == 3 and not np.ptp(image, axis=2).any():
        image = image[..., 0]
    if image.ndim == 2 and rng.random() < 0.5:
        return wild.as_rgb(image)
    return image


def _clean_kind(transform: Callable[[np.random.Generator, np.ndarray], wild.Variant]) -> EvalMaker:
    def make(rng: np.random.Generator, rgb: np.ndarray) -> tuple[np.ndarray, float, str]:
        v = transform(rng, rgb)
        return _grey_file(rng, v.image), math.nan, v.detail

    return make


def _lossy_kind(codec: str, encoders: tuple[str, ...], prepare=None) -> EvalMaker:
    """`codec` at a drawn quality with one of `encoders` ('cwebp' / 'pillow' for WebP), after `prepare`
    (a wild transform: grey, line art, manga) if given."""
    def make(rng: np.random.Generator, rgb: np.ndarray) -> tuple[np.ndarray, float, str]:
        image, detail = rgb, ""
        if prepare is not None:
            v = prepare(rng, rgb)
            image, detail = v.image, v.detail + ":"
        encoder = str(rng.choice(encoders))
        if codec == "jpeg":
            quality = int(rng.integers(JPEG_QUALITIES[0], JPEG_QUALITIES[1] + 1))
            out, name = degrade.random_jpeg(rng, image, quality, encoder)
        elif encoder == "cwebp":
            quality = int(rng.integers(WEBP_QUALITIES[0], WEBP_QUALITIES[1] + 1))
            out, name = degrade.random_cwebp(rng, image, quality)
        else:
            quality = int(rng.integers(WEBP_QUALITIES[0], WEBP_QUALITIES[1] + 1))
            out, name = degrade.encode_webp_pillow(wild.as_rgb(image), quality, int(rng.integers(0, 7))), "pillow"
        return _grey_file(rng, out), float(quality), f"{detail}{name}:q{quality}"

    return make


def _grey_jpeg(rng: np.random.Generator, rgb: np.ndarray) -> tuple[np.ndarray, float, str]:
    """One-component JPEG of colour art: Pillow saving an L image, or `cjpeg -grayscale` doing its own luma."""
    quality = int(rng.integers(JPEG_QUALITIES[0], JPEG_QUALITIES[1] + 1))
    if rng.random() < 0.5 or "cjpeg" not in WILD_JPEG_ENCODERS:
        out, detail = degrade.encode_jpeg_pillow(wild.grey(rgb), quality), "pillow_L"
    else:
        out, detail = degrade.encode_jpeg_cjpeg(rgb, quality, grayscale=True), "cjpeg_grayscale"
    return _grey_file(rng, out), float(quality), f"{detail}:q{quality}"


def _downscaled(kernels: tuple[str, ...]) -> Callable[[np.random.Generator, np.ndarray], wild.Variant]:
    return lambda rng, x: wild.random_resample(rng, x, float(rng.choice([0.5, 0.75])), kernels)


# The qualities and downscale factors of the kinds compressed, then downscaled (issue #12's JPEG 50-90, 0.5-0.9).
RESIZED_QUALITIES = (50, 90)
DOWNSCALES = (0.5, 0.9)


def _prepared_then_downscaled(prepare: Callable[[np.random.Generator, np.ndarray], wild.Variant]
                              ) -> Callable[[np.random.Generator, np.ndarray], wild.Variant]:
    """The art `prepare`d (a wild transform: grey, line art), then downscaled by a factor drawn from DOWNSCALES with
    one of the downscale kernels: the clean controls of the kinds compressed so, then downscaled."""
    def make(rng: np.random.Generator, rgb: np.ndarray) -> wild.Variant:
        art = prepare(rng, rgb)
        v = wild.random_resample(rng, wild.as_rgb(art.image), float(rng.uniform(*DOWNSCALES)), wild.DOWNSCALE_KERNELS)
        return wild.Variant(v.image, f"{art.detail}:{v.detail}")

    return make


# (folder, label, quality, how): deterministic variants of every held-out clean image.
# Qualities are the band centres users meet most (viewer exports 85-95, web 70-80, thumbnails ~50).
EVAL_VARIANTS: tuple[tuple[str, int, float, EvalMaker], ...] = (
    ("clean", degrade.CLEAN, float("nan"), lambda rng, x: x),
    ("palette", degrade.CLEAN, float("nan"), lambda rng, x: degrade.clean_palette(rng, x, dither=False)),
    ("palette_dither", degrade.CLEAN, float("nan"), lambda rng, x: degrade.clean_palette(rng, x, dither=True)),
    ("resampled", degrade.CLEAN, float("nan"), lambda rng, x: degrade.resize(x, 0.75, Image.Resampling.LANCZOS)),
    ("pixel_art", degrade.CLEAN, float("nan"), degrade.clean_pixel_art),
    ("jpeg_q50", degrade.JPEG, 50.0, lambda rng, x: degrade.encode_jpeg_pillow(x, 50, "420")),
    ("jpeg_q70", degrade.JPEG, 70.0, lambda rng, x: degrade.encode_jpeg_pillow(x, 70, "420")),
    ("jpeg_q85", degrade.JPEG, 85.0, lambda rng, x: degrade.encode_jpeg_pillow(x, 85, "420")),
    ("jpeg_q90", degrade.JPEG, 90.0, lambda rng, x: degrade.encode_jpeg_pillow(x, 90, "420")),
    ("jpeg_q95", degrade.JPEG, 95.0, lambda rng, x: degrade.encode_jpeg_pillow(x, 95, "444")),
    ("jpeg_q98", degrade.JPEG, 98.0, lambda rng, x: degrade.encode_jpeg_pillow(x, 98, "444")),
    ("jpeg_other_q85", degrade.JPEG, 85.0, lambda rng, x: degrade.random_jpeg(rng, x, 85, "cv2")[0]),
    ("webp_q50", degrade.WEBP, 50.0, lambda rng, x: degrade.encode_webp_pillow(x, 50)),
    ("webp_q75", degrade.WEBP, 75.0, lambda rng, x: degrade.encode_webp_pillow(x, 75)),
    ("webp_q90", degrade.WEBP, 90.0, lambda rng, x: degrade.encode_webp_pillow(x, 90)),
    ("webp_q95", degrade.WEBP, 95.0, lambda rng, x: degrade.encode_webp_pillow(x, 95, method=6)),
    ("grid_shift", degrade.JPEG, 85.0, lambda rng, x: degrade.shift_grid(degrade.encode_jpeg_pillow(x, 85, "420"), 3, 5)),
    ("webp_grid_shift", degrade.WEBP, 80.0, lambda rng, x: degrade.shift_grid(degrade.encode_webp_pillow(x, 80), 2, 1)),
    ("double", degrade.JPEG, 90.0,
     lambda rng, x: degrade.encode_jpeg_pillow(degrade.shift_grid(degrade.encode_jpeg_pillow(x, 75, "420"), 4, 4), 90, "420")),
    ("double_jpeg_webp", degrade.WEBP, 85.0, lambda rng, x: degrade.encode_webp_pillow(degrade.encode_jpeg_pillow(x, 85, "420"), 85)),
    ("resize", degrade.JPEG, 85.0, lambda rng, x: degrade.resize(degrade.encode_jpeg_pillow(x, 85, "420"), 0.95)),
)  # fmt: skip

# Optional hard case when mozjpeg is available.
if degrade.jpeglib is not None:
    EVAL_VARIANTS += (("jpeg_mozjpeg_q80", degrade.JPEG, 80.0, lambda rng, x: degrade.encode_jpeg_jpeglib(x, 80)),)

# Clean art as it is found in the wild (issue #10) and lossy files that look like it; settings drawn per image.
WILD_CLEAN_KINDS = {
    "grey": wild.random_grey,
    "lineart": wild.random_line_art,
    "manga": wild.random_manga,
    "downscaled": _downscaled(wild.DOWNSCALE_KERNELS),
    "downscaled_lanczos": _downscaled(("pil_lanczos",)),
    "upscaled_x2": lambda rng, x: wild.random_resample(rng, x, 2.0, wild.UPSCALE_X2_KERNELS),
    "upscaled_other": lambda rng, x: wild.random_resample(rng, x, float(rng.uniform(1.25, 4.0)), wild.ALL_KERNELS, 0.5),
    "smooth_render": wild.random_smooth_render,
    "small": wild.random_small,
    "flat": wild.random_flat,
    "blurred": lambda rng, x: wild.Variant(degrade.clean_blur(rng, x), "gaussian_blur"),
    "noisy": lambda rng, x: wild.Variant(degrade.clean_grain(rng, x), "grain"),
    "sharpened": lambda rng, x: wild.Variant(degrade.clean_sharpen(rng, x), "unsharp"),
}
EVAL_VARIANTS += tuple((kind, degrade.CLEAN, DRAWN, _clean_kind(t)) for kind, t in WILD_CLEAN_KINDS.items())
EVAL_VARIANTS += tuple(
    (f"jpeg_{encoder}", degrade.JPEG, DRAWN, _lossy_kind("jpeg", (encoder,))) for encoder in WILD_JPEG_ENCODERS
) + (
    ("jpeg_grey", degrade.JPEG, DRAWN, _grey_jpeg),
    ("jpeg_lineart", degrade.JPEG, DRAWN, _lossy_kind("jpeg", WILD_JPEG_ENCODERS, wild.random_line_art)),
    ("jpeg_manga", degrade.JPEG, DRAWN, _lossy_kind("jpeg", WILD_JPEG_ENCODERS, wild.random_manga)),
    # Emotes, icons and thumbnails saved as JPEG: images smaller than a tile, too small to check a grid on.
    ("jpeg_small", degrade.JPEG, DRAWN, _lossy_kind("jpeg", WILD_JPEG_ENCODERS, wild.random_small)),
    ("webp_grey", degrade.WEBP, DRAWN, _lossy_kind("webp", tuple(e for e in ("cwebp", "pillow") if e in degrade.webp_encoders()), wild.random_grey)),
)
if "cwebp" in degrade.webp_encoders():
    EVAL_VARIANTS += (("webp_cwebp", degrade.WEBP, DRAWN, _lossy_kind("webp", ("cwebp",))),)

# Issue #12: AVIF and JPEG XL from the command-line encoders users run, and JPEG / WebP resized after
# compression (label = the codec; quality = the codec's setting, which the model can only approximate).
AVIF_QUANTIZERS = (10, 40)  # avifenc --min = --max
# Encoder speeds: the defaults (6) and faster, as image tools and CDNs run them (speeds below 6 cost seconds a megapixel).
AVIF_PILLOW_QUALITIES = (30, 90)
JXL_DISTANCES = (1.0, 3.0)


def _avif_avifenc(rng: np.random.Generator, rgb: np.ndarray) -> tuple[np.ndarray, float, str]:
    quantizer, speed = int(rng.integers(AVIF_QUANTIZERS[0], AVIF_QUANTIZERS[1] + 1)), int(rng.integers(6, 9))
    yuv = str(rng.choice(["420", "444"], p=[0.7, 0.3]))
    out = degrade.encode_avif_avifenc(rgb, quantizer, speed, yuv)
    return out, degrade.avif_quantizer_quality(quantizer), f"avifenc:min=max={quantizer}:s{speed}:yuv{yuv}"


def _avif_pillow(rng: np.random.Generator, rgb: np.ndarray) -> tuple[np.ndarray, float, str]:
    quality, speed = int(rng.integers(AVIF_PILLOW_QUALITIES[0], AVIF_PILLOW_QUALITIES[1] + 1)), int(rng.integers(6, 11))
    sub = str(rng.choice(degrade.AVIF_SUBSAMPLINGS, p=[0.7, 0.3]))
    return degrade.encode_avif_pillow(rgb, quality, speed, sub), float(quality), f"pillow:q{quality}:s{speed}:{sub}"


def _jxl_cjxl(rng: np.random.Generator, rgb: np.ndarray) -> tuple[np.ndarray, float, str]:
    distance = round(float(rng.uniform(*JXL_DISTANCES)), 2)
    return degrade.encode_jxl_cjxl(rgb, distance), degrade.jxl_distance_quality(distance), f"cjxl:d{distance:g}:e7"


def _resized_lossy(codec: str, qualities: tuple[int, int], scales: tuple[float, float], kernels: tuple[str, ...],
                   prepare=None) -> EvalMaker:
    """`codec` at a quality drawn from `qualities` (one of the wild encoders for JPEG, cwebp or Pillow for
    WebP), then resized by a factor drawn from `scales` with one of `kernels`; after `prepare` (a wild transform:
    grey, line art) if given."""
    def make(rng: np.random.Generator, rgb: np.ndarray) -> tuple[np.ndarray, float, str]:
        prepared = ""
        if prepare is not None:
            v = prepare(rng, rgb)
            rgb, prepared = wild.as_rgb(v.image), v.detail + ":"
        quality = int(rng.integers(qualities[0], qualities[1] + 1))
        if codec == "jpeg":
            out, name = degrade.random_jpeg(rng, rgb, quality, str(rng.choice(WILD_JPEG_ENCODERS)))
        elif "cwebp" in degrade.webp_encoders() and rng.random() < 0.5:
            out, name = degrade.random_cwebp(rng, rgb, quality)
        else:
            out, name = degrade.encode_webp_pillow(rgb, quality, int(rng.integers(0, 7))), "pillow"
        v = wild.random_resample(rng, out, float(rng.uniform(*scales)), kernels)
        return v.image, float(quality), f"{prepared}{name}:q{quality}:{v.detail}"

    return make


ISSUE12_KINDS: tuple[tuple[str, int, float, EvalMaker], ...] = (
    ("jpeg_downscaled", degrade.JPEG, DRAWN,
     _resized_lossy("jpeg", RESIZED_QUALITIES, DOWNSCALES, wild.DOWNSCALE_KERNELS)),
    ("jpeg_upscaled_x2", degrade.JPEG, DRAWN, _resized_lossy("jpeg", (50, 75), (2.0, 2.0), wild.UPSCALE_X2_KERNELS)),
    ("webp_downscaled", degrade.WEBP, DRAWN,
     _resized_lossy("webp", RESIZED_QUALITIES, DOWNSCALES, wild.DOWNSCALE_KERNELS)),
)
if "pillow" in degrade.avif_encoders():
    ISSUE12_KINDS += (("avif_pillow", degrade.AVIF, DRAWN, _avif_pillow),)
if "avifenc" in degrade.avif_encoders():
    ISSUE12_KINDS += (("avif_avifenc", degrade.AVIF, DRAWN, _avif_avifenc),)
if "cjxl" in degrade.jxl_encoders():
    ISSUE12_KINDS += (("jxl_cjxl", degrade.JXL, DRAWN, _jxl_cjxl),)
EVAL_VARIANTS += ISSUE12_KINDS
# Issue #12's precision: clean textures and resizes the runtime's resized-damage judgements could take for a grid.
EVAL_VARIANTS += tuple((kind, degrade.CLEAN, DRAWN, _clean_kind(t)) for kind, t in degrade.TEXTURE_NEGATIVES.items())
# Issue #12's "upscaled 1.25-4 with the common kernels" beside x2 (session 16): JPEG upscaled by any factor in that
# range with a smoothing kernel (x2 and x4 are the halved judgement's; a factor drawn here is rarely either).
EVAL_VARIANTS += (("jpeg_upscaled_other", degrade.JPEG, DRAWN,
                   _resized_lossy("jpeg", (50, 90), (1.25, 4.0), degrade.SMOOTH_KERNELS)),)
# JPEG then downscaled on grey art and on line art (session 22): no chroma, so only luma's grid and blocks can show
# it (a manga page or sketch saved as JPEG and thumbnailed); with their clean controls, downscaled alike. The grey
# art is encoded as RGB (a three-component JPEG of grey pixels, as most tools save a grey picture held as RGB), not as
# jpeg_grey's one-component JPEG, and stored as RGB PNGs.
EVAL_VARIANTS += (
    ("jpeg_grey_downscaled", degrade.JPEG, DRAWN,
     _resized_lossy("jpeg", RESIZED_QUALITIES, DOWNSCALES, wild.DOWNSCALE_KERNELS, wild.random_grey)),
    ("jpeg_lineart_downscaled", degrade.JPEG, DRAWN,
     _resized_lossy("jpeg", RESIZED_QUALITIES, DOWNSCALES, wild.DOWNSCALE_KERNELS, wild.random_line_art)),
    ("grey_downscaled", degrade.CLEAN, DRAWN, _clean_kind(_prepared_then_downscaled(wild.random_grey))),
    ("lineart_downscaled", degrade.CLEAN, DRAWN, _clean_kind(_prepared_then_downscaled(wild.random_line_art))),
)


def _eval_image(args: tuple[int, int, Path, Path, Path, tuple[str, ...] | None]) -> list[dict]:
    """The EVAL_VARIANTS versions (those named in `kinds`, or all) of one clean image, written under
    out_dir/<kind>/; their manifest rows."""
    seed, index, path, clean_dir, out_dir, kinds = args
    rel = path.relative_to(clean_dir)
    stem = str(rel.with_suffix("")).replace("/", "__")
    rgb = load_clean(path)
    rgb = rgb[:MAX_SIDE, :MAX_SIDE]  # top-left crop keeps the image origin, hence any grid, in place
    rows = []
    for kind, label, quality, make in EVAL_VARIANTS:
        if kinds is not None and kind not in kinds:
            continue
        # Seeded per (image, kind): a kind built alone (--kinds) is the one a whole build gives.
        rng = np.random.default_rng([seed, index, zlib.crc32(kind.encode())])
        out, detail = make(rng, rgb), ""
        if isinstance(out, tuple):
            out, quality, detail = out
        target = out_dir / kind / f"{stem}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(out).save(target, compress_level=1)
        rows.append({"path": str(target.relative_to(out_dir)), "label": label, "quality": "" if np.isnan(quality) else int(quality),
                     "kind": kind, "source": str(rel), "detail": detail})  # fmt: skip
    return rows


MANIFEST_COLUMNS = ["path", "label", "quality", "kind", "source", "detail"]


def build_eval_set(clean_dir: str | Path, out_dir: str | Path, seed: int = 0, workers: int = 1, log=print,
                   kinds: tuple[str, ...] | None = None) -> Path:
    """Writes every EVAL_VARIANTS version of each clean image in `clean_dir` as PNG under
    `out_dir/<kind>/`, plus `out_dir/manifest.csv` (path relative to out_dir, label, quality, kind, source,
    detail: how a drawn variant was made, e.g. "lineart:canny:aa2:cjpeg:q57").

    Images are flattened over white, cropped to at most MAX_SIDE and processed in sorted order with a per-image
    seed, so the same folder and seed always give byte-identical outputs, whatever the number of workers.

    `kinds`: build only these into the set `out_dir` (same clean folder and seed as it was built with), adding
    their rows to its manifest.csv, which is replaced atomically; kinds the manifest already lists are refused, so
    no existing file or row is touched. Where `out_dir` has no manifest yet, the set holds these kinds alone.
    """
    clean_dir, out_dir = Path(clean_dir), Path(out_dir)
    manifest = out_dir / "manifest.csv"
    old_rows: list[dict] = []
    if kinds is not None:
        known = [kind for kind, *_ in EVAL_VARIANTS]
        if unknown := [k for k in kinds if k not in known]:
            raise ValueError(f"unknown evaluation kinds {', '.join(unknown)} (known: {', '.join(known)})")
        if manifest.is_file():
            with open(manifest, newline="") as f:
                reader = csv.DictReader(f)
                if reader.fieldnames != MANIFEST_COLUMNS:
                    raise ValueError(f"{manifest} has columns {reader.fieldnames}, not {MANIFEST_COLUMNS}")
                old_rows = list(reader)
        if present := sorted(set(kinds) & {r["kind"] for r in old_rows}):
            raise ValueError(f"{manifest} already lists kinds {', '.join(present)}: they are never rebuilt in place")
        kinds = tuple(kinds)
    files = sorted(p for p in clean_dir.rglob("*") if p.suffix.lower() in (".png", ".bmp", ".tif", ".tiff"))
    if not files:  # an empty set would look built to the steps after it
        raise ValueError(f"{clean_dir} holds no clean image (PNG, BMP, TIFF): build it first (--export-clean)")
    tasks = [(seed, index, path, clean_dir, out_dir, kinds) for index, path in enumerate(files)]
    if workers > 1:
        with Pool(workers) as pool:
            per_image = list(pool.imap(_eval_image, tasks))
    else:
        per_image = [_eval_image(t) for t in tasks]
    rows = [row for image_rows in per_image for row in image_rows]
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = manifest.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(old_rows + rows)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, manifest)  # a crash leaves the old manifest whole, never a half-written one
    log(f"wrote {len(rows)} files for {len(files)} clean images to {out_dir}" + (f" (kinds {', '.join(kinds)})" if kinds else ""))
    return manifest


def _export_names(files: list[tuple[str, Path]], cache_dir: Path) -> dict[Path, str]:
    """A unique PNG name per source file: source__folder__stem.png, with a hash of the file's path in the
    cache added where two files would share that name (as sprite sheets in same-named folders do)."""
    base = {path: f"{source}__{path.parent.name}__{path.stem}" for source, path in files}
    counts = Counter(base.values())
    return {path: f"{name}.png" if counts[name] == 1 else f"{name}__{zlib.crc32(str(path.relative_to(cache_dir)).encode()):08x}.png"
            for path, name in base.items()}


def export_clean_images(split: str, out_dir: str | Path, count: int, seed: int = 0, min_side: int = 256,
                        cache_dir: Path = DEFAULT_CACHE, exclude: tuple[Path, ...] = (),
                        sources: tuple[str, ...] = (), max_side: Optional[int] = None) -> list[Path]:
    """Copies `count` verified-clean real images of `split` (spread over its sources, or only `sources`, flattened
    over white, flat images and those under `min_side` px a side left out: they can hold no codec evidence, or few
    tiles; with `max_side`, those whose shorter side is over it too: a draw of small art) into `out_dir`: the input
    of `build_eval_set`.

    Source files already exported to a folder in `exclude` are skipped, so two sets (one to calibrate a
    threshold on, one to report on) share no picture."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    taken = {p.name for folder in exclude for p in Path(folder).glob("*.png")}
    files = kept_files(split, cache_dir)
    names = _export_names(files, Path(cache_dir))
    by_source: dict[str, list[Path]] = {}
    for source, path in files:
        if names[path] not in taken and (not sources or source in sources):
            by_source.setdefault(source, []).append(path)
    rng = np.random.default_rng(seed)
    written: list[Path] = []
    queues = {s: [paths[i] for i in rng.permutation(len(paths))] for s, paths in sorted(by_source.items())}
    while len(written) < count and any(queues.values()):
        for source, queue in queues.items():  # round robin, so no single source dominates
            while queue and len(written) < count:
                path = queue.pop()
                rgb = load_clean(path)
                side = min(rgb.shape[:2])
                if side < min_side or (max_side is not None and side > max_side) or luma(rgb).std() < 8 * MIN_TILE_STD:
                    continue
                target = out_dir / names[path]
                Image.fromarray(rgb).save(target)
                written.append(target)
                break
    return written


# ---------------------------------------------------------------- CLI


def add_chroma_twins(source: Path, out: Path, count: int, seed: int = 0) -> int:
    """Writes `source` plus `count` chroma-only JPEG q100 twins of its plain clean tiles to `out`."""
    data = dict(np.load(source))
    rng = np.random.default_rng(seed)
    candidates = np.where((data["label"] == 0) & (data["kind"] == "clean"))[0]
    picked = rng.choice(candidates, min(count, len(candidates)), replace=False)
    tiles, kinds = [], []
    for index in picked:
        twin, kind = degrade.chroma_only_jpeg(rng, data["tiles"][index])
        tiles.append(twin)
        kinds.append(kind)
    n = len(picked)
    twins = {"tiles": np.stack(tiles), "label": np.ones(n, data["label"].dtype),
             "quality": np.full(n, 100, data["quality"].dtype), "kind": np.array(kinds, dtype=data["kind"].dtype),
             "source": data["source"][picked], "image_id": data["image_id"][picked]}
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **{k: np.concatenate([data[k], twins[k]]) for k in data})
    return n


def merge_tile_sets(parts: list[Path], out: Path, leave_out: tuple[str, ...] = ()) -> int:
    """Writes the tiles of every set in `parts` to one .npz, less those whose kind has a word starting with one
    of `leave_out` (e.g. "resized_from": jpeg:pillow:resized_from_q64:x2.00); image ids are offset per part, so
    tiles of different images never share one. Returns the tile count."""
    merged: dict[str, list[np.ndarray]] = {}
    offset = 0
    for part in parts:
        with np.load(part) as data:
            arrays = {k: data[k] for k in data.files}
        if merged and set(arrays) != set(merged):
            raise ValueError(f"{part} has arrays {sorted(arrays)}, not {sorted(merged)}")
        if leave_out:
            keep = np.array([not any(word.startswith(leave_out) for word in str(kind).split(":"))
                             for kind in arrays["kind"]], bool)
            arrays = {k: v[keep] for k, v in arrays.items()}
        arrays["image_id"] = arrays["image_id"] + offset
        offset = int(arrays["image_id"].max()) + 1 if len(arrays["image_id"]) else offset
        for key, value in arrays.items():
            merged.setdefault(key, []).append(value)
    out.parent.mkdir(parents=True, exist_ok=True)
    # String arrays of different widths concatenate to the widest.
    np.savez(out, **{k: np.concatenate(v) for k, v in merged.items()})
    return sum(len(v) for v in merged["label"])


def main(argv: list[str] | None = None) -> int:
    """`build-data`: tiles for training (--split) or, with --eval-from, the per-kind evaluation folders."""
    parser = argparse.ArgumentParser(prog="ccscore-export build-data", description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=SPLITS, default="train")
    parser.add_argument("--images", type=int, default=6000)
    parser.add_argument("--out", type=Path, required=True, help=".npz for tiles; a folder with --eval-from")
    parser.add_argument("--seed", type=int, default=None, help="default: 0 for train, 1 for val")
    parser.add_argument("--tile-size", type=int, default=128)
    parser.add_argument("--tiles-per-image", type=int, default=4)
    parser.add_argument("--procedural-share", type=float, default=0.5)
    parser.add_argument("--procedural-style", choices=sorted(PROCEDURAL_STYLES), default="illustration",
                        help="what procedural pictures look like: illustrations, or UI and retro-game graphics")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--prepare-sources", action="store_true", help="fetch and verify the real sources first")
    parser.add_argument("--eval-from", type=Path, default=None, help="folder of clean PNGs -> evaluation set")
    parser.add_argument("--export-clean", type=int, default=0, metavar="N",
                        help="copy N verified-clean real images of --split to the folder --out (for --eval-from)")
    parser.add_argument("--exclude-from", type=Path, action="append", default=[], metavar="DIR",
                        help="with --export-clean: skip images already exported to DIR (repeatable)")
    parser.add_argument("--min-side", type=int, default=256, metavar="PX",
                        help="with --export-clean: skip images with a side under PX")
    parser.add_argument("--max-side", type=int, default=None, metavar="PX",
                        help="with --export-clean: skip images whose shorter side is over PX (a draw of small art)")
    parser.add_argument("--sources", default="", metavar="S1,S2",
                        help="with --export-clean: only these sources (Debian package names) of --split")
    parser.add_argument("--chroma-twins", type=int, default=0, metavar="N",
                        help="with --from: add N chroma-only JPEG q100 twins of its clean tiles, write --out")
    parser.add_argument("--from", dest="source", type=Path, default=None, help="a tile .npz (--chroma-twins)")
    parser.add_argument("--mix", choices=sorted(degrade.MIXES), default="full",
                        help="training mix of the tiles: full; or, to --merge with a full set, issue12 (AVIF, JPEG XL "
                             "and resized damage), graphics (JPEG and WebP only) or textures (issue #12's clean "
                             "textures and resizes, and lossy art drawn on them)")
    parser.add_argument("--merge", type=Path, nargs="+", default=None, metavar="NPZ",
                        help="write these tile sets as one to --out (image ids kept apart)")
    parser.add_argument("--leave-out", default="", metavar="W1,W2",
                        help="with --merge: leave out tiles whose kind has a word starting with one of these "
                             "(kinds are colon-separated words, e.g. resized_from: jpeg:pillow:resized_from_q64:x2.00)")
    parser.add_argument("--kinds", default=None, metavar="K1,K2",
                        help="with --eval-from: build only these kinds into the existing evaluation folder --out, "
                             "appending to its manifest.csv (kinds it already lists are refused)")
    args = parser.parse_args(argv)
    if args.leave_out and not args.merge:
        parser.error("--leave-out needs --merge NPZ ...")
    if args.kinds is not None and args.eval_from is None:
        parser.error("--kinds needs --eval-from CLEAN_DIR (and the existing set as --out)")
    if args.merge:
        tiles = merge_tile_sets(args.merge, args.out, tuple(w.strip() for w in args.leave_out.split(",") if w.strip()))
        print(f"wrote {args.out}: {tiles} tiles from {len(args.merge)} sets")
        return 0
    if args.chroma_twins:
        if args.source is None:
            parser.error("--chroma-twins needs --from SOURCE.npz")
        added = add_chroma_twins(args.source, args.out, args.chroma_twins, seed=args.seed or 0)
        print(f"wrote {args.out}: {args.source} plus {added} chroma-only twins")
        return 0
    if args.export_clean and args.max_side is not None and args.max_side < args.min_side:  # before a long download
        parser.error(f"--max-side {args.max_side} is under --min-side {args.min_side}: no image would fit")
    if args.prepare_sources and args.eval_from is None:  # before an export of clean images as before tiles
        from .sources import prepare_sources

        prepare_sources(args.cache, workers=args.workers)
    if args.export_clean:
        existed = args.out.exists()
        written = export_clean_images(args.split, args.out, args.export_clean, seed=args.seed or 0, cache_dir=args.cache,
                                      exclude=tuple(args.exclude_from), min_side=args.min_side, max_side=args.max_side,
                                      sources=tuple(s.strip() for s in args.sources.split(",") if s.strip()))
        if not written:  # an empty folder would look built to the steps after it
            if not existed and not any(args.out.iterdir()):
                args.out.rmdir()
            if not kept_files(args.split, args.cache):
                print(f"error: no verified real sources for split {args.split!r} in {args.cache} "
                      "(fetch and verify them first: --prepare-sources)", file=sys.stderr)
            else:  # e.g. a --sources typo
                print(f"error: no verified {args.split} image fits (--sources, --min-side, --max-side, "
                      "--exclude-from)", file=sys.stderr)
            return 2
        print(f"wrote {len(written)} clean {args.split} images to {args.out}")
        if len(written) < args.export_clean:
            print(f"note: {args.export_clean} asked, the split's sources hold only {len(written)} that fit "
                  "(size, --exclude-from, --sources)", file=sys.stderr)
        return 0
    if args.eval_from is not None:
        kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip()) if args.kinds else None
        try:
            build_eval_set(args.eval_from, args.out, seed=args.seed or 0, workers=args.workers, kinds=kinds)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    seed = args.seed if args.seed is not None else SPLITS.index(args.split)
    build_tiles(args.out, args.split, args.images, seed, args.tile_size, args.tiles_per_image,
                args.procedural_share, args.cache, args.workers, mix=args.mix,
                procedural_style=args.procedural_style)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
