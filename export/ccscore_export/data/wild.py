"""Clean art as it is found in the wild: grey copies, line art and pencil sketches, manga with screentone,
images resampled by every site they passed through, 2x and other upscales, smooth 3D-render-like pictures,
tiny crops and flat canvases.

None of these ever went through a lossy codec, yet each has structure a block-DCT detector can mistake for a
codec's trace (smooth resampled spectra, periodic dot screens, two-level edges, no texture at all). Training
(`degrade.random_degradation`) and evaluation (`build.EVAL_VARIANTS`) both take them from here, so each
transform has one definition.

Transforms take and return uint8 arrays: [H, W] for grey results (saved as L PNGs), [H, W, 3] RGB or, for
the transparent canvas, [H, W, 4] RGBA. `as_rgb` turns any of them into what a user's viewer shows.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image, ImageFilter


class Variant(NamedTuple):
    """One randomised transform's output and how it was made ("lineart:canny:aa2")."""

    image: np.ndarray
    detail: str


def as_rgb(image: np.ndarray) -> np.ndarray:
    """Grey -> RGB by repetition; RGBA -> RGB over white (as the runtime flattens); RGB unchanged."""
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=2)
    if image.shape[2] == 4:
        alpha = image[..., 3:].astype(np.float32) / 255
        return np.rint(image[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
    return image


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- grey

# Luma weights of the converters people use: Rec. 601 (Pillow "L", OpenCV, libjpeg), Rec. 709 (GIMP,
# ImageMagick's Rec709Luma), the plain mean (many scripts).
GREY_WEIGHTS = {"rec601": (0.299, 0.587, 0.114), "rec709": (0.2126, 0.7152, 0.0722), "mean": (1 / 3, 1 / 3, 1 / 3)}


def grey(rgb: np.ndarray, weights: str = "rec601") -> np.ndarray:
    """[H, W] luma of an RGB image."""
    if weights == "rec601":
        return np.asarray(Image.fromarray(rgb).convert("L"))  # exactly what Pillow users get
    return _to_uint8(rgb.astype(np.float32) @ np.array(GREY_WEIGHTS[weights], np.float32))


def random_grey(rng: np.random.Generator, rgb: np.ndarray) -> Variant:
    weights = str(rng.choice(list(GREY_WEIGHTS), p=[0.6, 0.25, 0.15]))
    return Variant(grey(rgb, weights), f"grey:{weights}")


# ---------------------------------------------------------------- line art and sketches


def _luma_float(image: np.ndarray) -> np.ndarray:
    return (image if image.ndim == 2 else grey(image)).astype(np.float32)


def _supersampled(y: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return y
    return cv2.resize(y, (y.shape[1] * factor, y.shape[0] * factor), interpolation=cv2.INTER_LINEAR)


def _area_down(x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if x.shape[:2] == shape:
        return x
    return cv2.resize(x, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


def ink_edges(rgb: np.ndarray, method: str, supersample: int = 1, sigma: float = 1.0, strength: float = 1.0) -> np.ndarray:
    """Ink coverage in [0, 1] of the art's edges: 'sobel' (soft, weight follows the edge contrast) or 'canny'
    (hard one-pixel lines, thickened). Drawn at `supersample` x and area-reduced, which anti-aliases them."""
    shape = rgb.shape[:2]
    y = cv2.GaussianBlur(_supersampled(_luma_float(rgb), supersample), (0, 0), sigma * supersample)
    if method == "sobel":
        mag = np.hypot(cv2.Sobel(y, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(y, cv2.CV_32F, 0, 1, ksize=3))
        scale = max(float(np.percentile(mag, 99)), 1.0)
        ink = np.clip((mag / scale - 0.15) * 1.6 * strength, 0, 1)
    elif method == "canny":
        edges = cv2.Canny(_to_uint8(y), 30 / strength, 90 / strength) > 0
        if supersample > 1:  # a one-pixel line at 2-3x is too thin once reduced
            edges = cv2.dilate(edges.astype(np.uint8), np.ones((supersample, supersample), np.uint8)) > 0
        ink = edges.astype(np.float32)
    else:
        raise ValueError(f"unknown edge method {method!r}")
    return np.clip(_area_down(ink, shape), 0, 1)


def pencil_sketch(rng: np.random.Generator, rgb: np.ndarray) -> np.ndarray:
    """The colour-dodge pencil effect (luma / inverted-blurred luma) with light paper grain, as sketch filters do."""
    y = _luma_float(rgb)
    blurred = cv2.GaussianBlur(255 - y, (0, 0), rng.uniform(2.0, 8.0))
    sketch = np.clip(y * 255 / np.maximum(255 - blurred, 1), 0, 255)
    sketch = 255 * (sketch / 255) ** rng.uniform(1.0, 3.0)  # darker strokes
    if rng.random() < 0.5:
        grain = cv2.GaussianBlur(rng.normal(0, 1, y.shape).astype(np.float32), (0, 0), 0.7)
        sketch = sketch - np.abs(grain) * rng.uniform(2, 8) * (1 - sketch / 255 * 0.7)
    return _to_uint8(sketch)


def random_line_art(rng: np.random.Generator, rgb: np.ndarray) -> Variant:
    """Ink line art (black on white or dark grey on paper tone) or a pencil sketch, in grey."""
    style = str(rng.choice(["sobel", "canny", "pencil"], p=[0.4, 0.35, 0.25]))
    if style == "pencil":
        return Variant(pencil_sketch(rng, rgb), "lineart:pencil")
    supersample = int(rng.choice([1, 2, 3], p=[0.3, 0.5, 0.2]))
    ink = ink_edges(rgb, style, supersample, rng.uniform(0.6, 1.6), rng.uniform(0.7, 1.5))
    paper, pen = rng.uniform(235, 255) if rng.random() < 0.4 else 255.0, rng.uniform(0, 60)
    return Variant(_to_uint8(paper + (pen - paper) * ink), f"lineart:{style}:aa{supersample}")


# ---------------------------------------------------------------- manga: two-level art with screentone


def _rotated_coords(shape: tuple[int, int], period: float, angle_deg: float) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    a = np.deg2rad(angle_deg)
    return (xx * np.cos(a) + yy * np.sin(a)) / period, (-xx * np.sin(a) + yy * np.cos(a)) / period


def screen_pattern(shape: tuple[int, int], tone: np.ndarray, style: str, period: float, angle: float) -> np.ndarray:
    """Ink (bool) of a screen that renders `tone` (0 = black .. 1 = white): 'dots' (amplitude-modulated
    halftone), 'lines' (hatching), 'cross' (cross-hatching), or 'tone' (a fixed dot screen, 30-50% ink)."""
    u, v = _rotated_coords(shape, period, angle)
    du, dv = u - np.floor(u) - 0.5, v - np.floor(v) - 0.5
    if style == "dots":
        return np.hypot(du, dv) < np.sqrt((1 - tone) / np.pi)
    if style == "lines":
        return np.abs(dv) < (1 - tone) / 2
    if style == "cross":
        return (np.abs(dv) < (1 - tone) / 3) | ((tone < 0.55) & (np.abs(du) < (1 - tone) / 3))
    if style == "tone":
        return np.hypot(du, dv) < 0.3
    raise ValueError(f"unknown screen style {style!r}")


def random_manga(rng: np.random.Generator, rgb: np.ndarray) -> Variant:
    """Two-level manga rendering of the art's luma: black ink in the shadows, white highlights, a screen
    (halftone dots, fixed screentone, hatching) in the mid tones, inked edges on top. Drawn at 1x (pure two
    levels, as scanned-and-thresholded pages are) or at 2-3x and area-reduced (anti-aliased digital tone)."""
    shape = rgb.shape[:2]
    style = str(rng.choice(["dots", "tone", "lines", "cross"], p=[0.35, 0.3, 0.2, 0.15]))
    period = float(rng.choice([rng.uniform(3, 10), float(rng.choice([4, 5, 6, 8]))]))
    angle = float(rng.choice([0.0, 45.0, rng.uniform(0, 90)]))
    supersample = int(rng.choice([1, 2], p=[0.55, 0.45]))
    y = _supersampled(cv2.GaussianBlur(_luma_float(rgb), (0, 0), 1.0), supersample) / 255
    black, white = rng.uniform(0.1, 0.3), rng.uniform(0.7, 0.9)
    tone = np.clip((y - black) / (white - black), 0, 1)
    ink = (y < black) | ((y <= white) & screen_pattern(y.shape, tone, style, period * supersample, angle))
    ink = ink | (ink_edges(_to_uint8(y * 255), "canny", 1, 1.0 * supersample) > 0)
    coverage = _area_down(ink.astype(np.float32), shape)
    return Variant(_to_uint8(255 * (1 - coverage)), f"manga:{style}:p{period:.1f}:a{angle:.0f}:aa{supersample}")


# ---------------------------------------------------------------- resampling

# The kernels image tools offer. Pillow: nearest, box (area average), bilinear, hamming, bicubic, lanczos;
# OpenCV: nearest, linear, cubic, Lanczos-4, area (the usual choice for downscaling).
KERNELS = {
    "pil_nearest": Image.Resampling.NEAREST, "pil_box": Image.Resampling.BOX, "pil_bilinear": Image.Resampling.BILINEAR,
    "pil_hamming": Image.Resampling.HAMMING, "pil_bicubic": Image.Resampling.BICUBIC, "pil_lanczos": Image.Resampling.LANCZOS,
    "cv2_nearest": cv2.INTER_NEAREST, "cv2_linear": cv2.INTER_LINEAR, "cv2_cubic": cv2.INTER_CUBIC,
    "cv2_lanczos": cv2.INTER_LANCZOS4, "cv2_area": cv2.INTER_AREA,
}  # fmt: skip
DOWNSCALE_KERNELS = ("pil_lanczos", "pil_bicubic", "pil_bilinear", "pil_box", "cv2_area")
UPSCALE_X2_KERNELS = ("pil_bicubic", "pil_lanczos", "cv2_cubic", "cv2_lanczos")
ALL_KERNELS = tuple(KERNELS)


def resample(image: np.ndarray, scale: float, kernel: str) -> np.ndarray:
    """Resize by `scale` (at least 8 px a side) with one of KERNELS."""
    h, w = image.shape[:2]
    size = (max(8, round(w * scale)), max(8, round(h * scale)))
    if kernel.startswith("pil_"):
        return np.asarray(Image.fromarray(image).resize(size, KERNELS[kernel]))
    return cv2.resize(image, size, interpolation=KERNELS[kernel])


def unsharp(rng: np.random.Generator, image: np.ndarray) -> tuple[np.ndarray, str]:
    """Sharpening after a resize, as upscalers and 'enhance' buttons do: Pillow's UnsharpMask or the
    OpenCV recipe (image + amount * (image - blur))."""
    if rng.random() < 0.5:
        f = ImageFilter.UnsharpMask(radius=rng.uniform(0.5, 2.0), percent=int(rng.integers(40, 160)), threshold=int(rng.integers(0, 3)))
        return np.asarray(Image.fromarray(image).filter(f)), "pil_unsharp"
    x = image.astype(np.float32)
    amount = rng.uniform(0.3, 1.2)
    return _to_uint8(x + amount * (x - cv2.GaussianBlur(x, (0, 0), rng.uniform(0.6, 2.0)))), "cv2_unsharp"


def random_resample(
    rng: np.random.Generator, image: np.ndarray, scale: float, kernels: tuple[str, ...], sharpen_share: float = 0.0,
    max_side: int = 1600,
) -> Variant:
    """Resize by `scale` with a kernel drawn from `kernels`, sharpened after with probability `sharpen_share`.
    Upscales start from a top-left crop so the result stays within `max_side`."""
    if scale > 1:
        side = max(8, int(max_side / scale))
        image = image[:side, :side]
    kernel = str(rng.choice(kernels))
    out = resample(image, scale, kernel)
    detail = f"x{scale:.2f}:{kernel}"
    if rng.random() < sharpen_share:
        out, how = unsharp(rng, out)
        detail += f":{how}"
    return Variant(out, detail)


# ---------------------------------------------------------------- smooth renders


def smooth_render(rng: np.random.Generator, height: int, width: int, palette: np.ndarray | None = None) -> np.ndarray:
    """A 3D-render-like picture: shaded spheres (Lambert + Phong highlight) over a smooth gradient floor,
    soft contact shadows, rendered at 2x and area-reduced. Colours come from `palette` ([N, 3]) if given."""
    def colour() -> np.ndarray:
        if palette is not None and len(palette):
            return palette[int(rng.integers(len(palette)))].astype(np.float32)
        return rng.uniform(30, 255, 3).astype(np.float32)

    s = 2
    h, w = height * s, width * s
    t = (np.arange(h, dtype=np.float32) / h)[:, None, None] ** rng.uniform(0.6, 1.8)
    img = np.ascontiguousarray(np.broadcast_to(colour() * (1 - t) + colour() * t, (h, w, 3)), dtype=np.float32)
    depth = np.full((h, w), -np.inf, np.float32)
    light = rng.normal(0, 1, 3) + np.array([0, 0, 2.5])
    light = (light / np.linalg.norm(light)).astype(np.float32)
    half = light + np.array([0, 0, 1], np.float32)
    half /= np.linalg.norm(half)
    shininess = rng.uniform(8, 80)
    for _ in range(int(rng.integers(2, 7))):
        r = rng.uniform(0.08, 0.35) * min(h, w)
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        # Work in the sphere's (and its shadow's) bounding box only.
        y0, y1 = max(0, int(cy - r) - 1), min(h, int(cy + 2 * r) + 2)
        x0, x1 = max(0, int(cx - 3 * r) - 1), min(w, int(cx + 3 * r) + 2)
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        box, zbox = img[y0:y1, x0:x1], depth[y0:y1, x0:x1]
        # contact shadow: a soft dark ellipse below the sphere
        shadow = np.exp(-(((xx - cx) / (1.1 * r)) ** 2 + ((yy - cy - 0.9 * r) / (0.35 * r)) ** 2))
        box *= (1 - 0.35 * shadow)[..., None]
        dx, dy = (xx - cx) / r, (yy - cy) / r
        d2 = dx * dx + dy * dy
        nz = np.sqrt(np.clip(1 - d2, 0, 1))
        z = rng.uniform(0, 1) + nz
        front = (d2 < 1) & (z > zbox)
        n = np.stack([dx, dy, nz], axis=-1)
        diffuse = np.clip(n @ light, 0, 1)
        spec = np.clip(n @ half, 0, 1) ** shininess
        shaded = colour() * (0.25 + 0.75 * diffuse)[..., None] + 255 * 0.6 * spec[..., None]
        box[front] = shaded[front]
        zbox[front] = z[front]
    out = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.3:  # a little render noise (path tracers) or dithering
        out = out + rng.normal(0, rng.uniform(0.3, 1.5), out.shape)
    return _to_uint8(out)


def art_palette(rgb: np.ndarray, n: int = 16) -> np.ndarray:
    """A few colours of the art (a strided sample), so renders derived from it keep its look."""
    flat = rgb.reshape(-1, 3)
    return flat[:: max(1, len(flat) // n)][:n]


def random_smooth_render(rng: np.random.Generator, rgb: np.ndarray) -> Variant:
    h, w = rgb.shape[:2]
    return Variant(smooth_render(rng, h, w, art_palette(rgb) if rng.random() < 0.5 else None), "smooth_render")


# ---------------------------------------------------------------- textured canvases

CANVAS_STYLES = ("weave", "grid", "linen")


def canvas_texture(rng: np.random.Generator, rgb: np.ndarray) -> Variant:
    """Art on a textured canvas or paper, as scanned paintings and "canvas" brushes leave it: a faint pattern of
    period 4-8 px, 2-8 levels deep, multiplied in: woven (checkered threads), ruled (anti-aliased 1 px lines) or
    linen (threads of uneven strength). Periodic along both axes, like a JPEG's block grid downscaled."""
    h, w = rgb.shape[:2]
    style = str(rng.choice(CANVAS_STYLES))
    period, depth = float(rng.uniform(4.0, 8.0)), float(rng.uniform(2.0, 8.0))
    y, x = np.arange(h, dtype=np.float32)[:, None], np.arange(w, dtype=np.float32)[None, :]
    if style == "weave":
        pattern = 0.5 * (1 + np.cos(2 * np.pi * x / period) * np.cos(2 * np.pi * y / period))
    elif style == "grid":
        def ruled(t: np.ndarray) -> np.ndarray:  # coverage of a 1 px line at every multiple of the period
            return np.clip(1 - np.abs((t / period + 0.5) % 1 - 0.5) * period, 0, 1)

        pattern = np.maximum(ruled(x), ruled(y))
    else:
        strength_x = cv2.GaussianBlur(rng.uniform(0.3, 1.0, (1, w)).astype(np.float32), (0, 0), 3)
        strength_y = cv2.GaussianBlur(rng.uniform(0.3, 1.0, (h, 1)).astype(np.float32), (0, 0), 3)
        threads = np.cos(2 * np.pi * x / period) * strength_x + np.cos(2 * np.pi * y / period) * strength_y
        pattern = 0.5 + 0.25 * threads
    shade = 1 - depth / 255 * np.broadcast_to(pattern, (h, w))
    image = rgb.astype(np.float32) * (shade[..., None] if rgb.ndim == 3 else shade)
    return Variant(_to_uint8(image), f"canvas:{style}:p{period:.2f}:d{depth:.1f}")


# ---------------------------------------------------------------- small images and flat canvases


def random_small(rng: np.random.Generator, rgb: np.ndarray) -> Variant:
    """An image smaller than a 128 px tile: a 40-120 px crop of the art (the most textured of a few tries,
    as an emote or icon would be), or the whole art shrunk to that size (a thumbnail)."""
    h, w = rgb.shape[:2]
    ch, cw = (int(v) for v in rng.integers(40, 121, 2))
    ch, cw = min(ch, h), min(cw, w)
    if rng.random() < 0.25:
        kernel = str(rng.choice(DOWNSCALE_KERNELS))
        scale = min(ch / h, cw / w)
        return Variant(resample(rgb, scale, kernel), f"small:thumbnail:{kernel}")
    best, best_std = rgb[:ch, :cw], -1.0
    for _ in range(6):
        y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        crop = rgb[y0 : y0 + ch, x0 : x0 + cw]
        std = float(crop.std())
        if std > best_std:
            best, best_std = crop, std
    return Variant(np.ascontiguousarray(best), f"small:crop:{ch}x{cw}")


FLAT_KINDS = ("white", "single_colour", "near_flat", "transparent", "strip")


def flat_canvas(rng: np.random.Generator, rgb: np.ndarray, kind: str) -> np.ndarray:
    """Nothing a codec could have marked: blank white, one colour, one colour with +-1 level noise, a fully
    transparent RGBA canvas (alpha 0 everywhere), or a 1-px-high strip of the art."""
    h, w = rgb.shape[:2]
    if kind == "white":
        return np.full((h, w, 3), 255, np.uint8)
    colour = rgb.reshape(-1, 3)[int(rng.integers(h * w))].astype(np.int16)
    if kind == "single_colour":
        return np.broadcast_to(colour.astype(np.uint8), (h, w, 3)).copy()
    if kind == "near_flat":
        noise = rng.integers(-1, 2, (h, w, 1)) * (rng.random((h, w, 1)) < rng.uniform(0.05, 0.5))
        return np.clip(colour + noise, 0, 255).astype(np.uint8)
    if kind == "transparent":
        out = np.zeros((h, w, 4), np.uint8)
        if rng.random() < 0.5:  # editors often keep colour under zero alpha; it must not count
            out[..., :3] = rgb
        return out
    if kind == "strip":
        row = int(rng.integers(h))
        return np.ascontiguousarray(rgb[row : row + 1])
    raise ValueError(f"unknown flat kind {kind!r}")


def random_flat(rng: np.random.Generator, rgb: np.ndarray) -> Variant:
    kind = str(rng.choice(FLAT_KINDS))
    return Variant(flat_canvas(rng, rgb, kind), f"flat:{kind}")
