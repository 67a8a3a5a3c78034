"""Decoding any supported input into the RGB uint8 array the tiler needs."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps

from .errors import ImageError, one_line

ImageInput = Union[str, os.PathLike, Image.Image, np.ndarray]
DEFAULT_MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485  # Pillow's own decompression-bomb limit
HIGH_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def _flatten_alpha(im: Image.Image) -> Image.Image:
    # Colours under transparent pixels are arbitrary; over a flat white they carry no false evidence.
    rgba = im if im.mode == "RGBA" else im.convert("RGBA")
    alpha = rgba.getchannel("A")
    if alpha.getextrema()[0] == 255:  # fully opaque (common in exported art): nothing to flatten
        return rgba.convert("RGB")
    background = Image.new("RGB", rgba.size, (255, 255, 255))
    background.paste(rgba, mask=alpha)  # one pass, no intermediate RGBA composite
    return background


def pil_to_rgb(im: Image.Image) -> np.ndarray:
    """Any Pillow mode -> RGB uint8: alpha flattened, high bit depths scaled, CMYK/palette converted."""
    if im.mode in HIGH_BIT_MODES:
        values = np.asarray(im, dtype=np.float64)
        gray = np.clip(values / 257.0, 0, 255).round().astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if im.mode == "F":
        gray = np.clip(np.asarray(im, dtype=np.float64), 0, 255).round().astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (im.mode in ("P", "L", "RGB") and "transparency" in im.info):
        im = _flatten_alpha(im)
    elif im.mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im)


def array_to_rgb(array: np.ndarray) -> np.ndarray:
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ImageError(f"expected an RGB array of shape (H, W, 3), got {array.shape}")
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    if array.dtype != np.uint8:
        raise ImageError(f"expected uint8 pixels, got {array.dtype}")
    return np.ascontiguousarray(array[..., :3])


def open_image(path: Union[str, os.PathLike], max_pixels: int | None = None) -> Image.Image:
    """Opens and fully decodes the first frame, EXIF orientation applied; every failure is an `ImageError`."""
    limit = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    p = Path(path)
    if p.is_dir():
        raise ImageError(f"{p} is a directory")
    pillow_limit = Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            # Our own limit below decides; Pillow's warning would only be noise on stderr, and its open-time
            # bomb check (at twice its limit) must not refuse what a larger --max-pixels allows.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            if pillow_limit is not None and limit > pillow_limit:
                Image.MAX_IMAGE_PIXELS = limit
            im = Image.open(p)
            width, height = im.size
            if width * height > limit:
                raise ImageError(f"{p}: {width}x{height} = {width * height / 1e6:.0f} megapixels exceeds "
                                 f"the limit of {limit / 1e6:.0f} (--max-pixels)")
            im.seek(0)  # animated images: the first frame
            im.load()
            ImageOps.exif_transpose(im, in_place=True)  # a copy per image otherwise, even without EXIF
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{p}: no such file") from None
    except Image.DecompressionBombError:
        raise ImageError(f"{p}: image exceeds the decompression-bomb limit (--max-pixels)") from None
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError... for broken files
        raise ImageError(f"{p}: cannot decode image ({one_line(exc)})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = pillow_limit
    return im


def load_rgb(source: ImageInput, max_pixels: int | None = None) -> np.ndarray:
    if isinstance(source, np.ndarray):
        return array_to_rgb(source)
    if isinstance(source, Image.Image):
        return pil_to_rgb(source)
    im = open_image(source, max_pixels)
    try:
        return pil_to_rgb(im)
    except Exception as exc:
        raise ImageError(f"{source}: cannot convert image ({one_line(exc)})") from None
